package replication

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// hashicorp/raft's API takes a timeout (for queueing the request only) and
// returns a future whose Error blocks until raft answers. This file is the
// one place that turns that into Strata's: every call takes a context, and
// raft's errors become this package's.

// enqueueTimeout is the timeout to give a raft call made under ctx: the
// time left before ctx's deadline, or 0 (wait) without one. A context
// cancelled without a deadline is noticed by wait, not while queueing;
// raft's queues are short.
func enqueueTimeout(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Nanosecond)
	}
	return 0
}

// wait waits for f or ctx, whichever ends first. On ctx, raft still
// finishes the request; its outcome is then unknown to the caller.
func wait(ctx context.Context, f raft.Future) error {
	if ctx.Done() == nil {
		return f.Error()
	}
	done := make(chan error, 1)
	go func() { done <- f.Error() }() // ends when raft answers, which it always does (shutdown included)
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// convert maps an error from raft (or from wait) to this package's errors.
// submitted says the request reached raft's log (an Apply or a membership
// change), so that losing leadership or the context leaves its outcome
// unknown.
func (g *Group) convert(ctx context.Context, err error, submitted bool) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader):
		id, addr := g.Leader()
		return &NotLeaderError{LeaderID: id, LeaderAddr: addr}
	case errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return ErrTransferInProgress
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrShutdown
	case errors.Is(err, raft.ErrLeadershipLost):
		if !submitted {
			return &NotLeaderError{}
		}
		return fmt.Errorf("%w: %w", ErrIndeterminate, err)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		// Never queued: a definite failure, reported as the context's.
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		return context.DeadlineExceeded
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		if submitted {
			return fmt.Errorf("%w: %w", ErrIndeterminate, err)
		}
		return err
	}
	return err
}
