package main

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// waitUntil asks cond every 100 ms until it returns nil, and gives up
// after timeout, or at once if one of ps has exited (with its log's end).
func waitUntil(ctx context.Context, timeout time.Duration, ps procs, cond func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := ps.anyExited(); err != nil {
			return err
		}
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		err := cond(cctx)
		ccancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("not within %s: %w", timeout, err)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}
