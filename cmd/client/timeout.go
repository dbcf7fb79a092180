package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"
)

// --timeout has one meaning per command family, said in each --help:
//
//   - admin commands (topic, group, cluster, partition, broker, ...):
//     the limit for the whole command, default 10s; 0 = no limit.
//     partition move and broker decommission have no limit unless
//     --timeout is given (a move copies logs for as long as it takes).
//   - produce and bench produce: the delivery limit of each record,
//     retries included (0 = no limit).
//   - consume: its own --timeout, how long without a new record before
//     it stops (0 = follow until interrupted).
//
// Connection retries (a broker restarting, a leader moving) are bounded by
// --timeout too.
const timeoutHelp = "admin commands: limit for the whole command; produce: delivery limit per record; 0 = no limit (consume has its own)"

// noLimit stands for --timeout 0 where the client wants a duration.
const noLimit = 100 * 365 * 24 * time.Hour

// retryTimeout is --timeout as the client's retry and delivery limit.
func (e *env) retryTimeout() time.Duration {
	if e.timeout <= 0 {
		return noLimit
	}
	return e.timeout
}

// limitCtx bounds ctx by --timeout, or not at all for 0.
func (e *env) limitCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if e.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, e.timeout)
}

// checkTimeout refuses a negative --timeout in the flag's own words (the
// client would say "RetryTimeout: -1s is negative").
func (e *env) checkTimeout(cmd *cobra.Command) error {
	if e.timeout < 0 {
		return usageErrorf("--timeout %s is negative: give a duration such as 30s, or 0 for no limit", e.timeout)
	}
	return nil
}
