package client

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"

	v1 "github.com/stratalog/strata/api/v1"
)

// Routing to partition leaders. Produce, fetch, ListOffsets and
// DeleteRecords must reach the leader of each partition; the metadata
// cache (metaCache) says which broker that is, and NOT_LEADER replies
// correct it (metaCache.redirect).

// redirectedError marks a NOT_LEADER error whose leader hint the metadata
// cache has taken: the next attempt goes to the new leader at once, and
// retry neither reloads metadata nor backs off for it (the first time in
// a row). It is transparent: Error and errors.Is see the NOT_LEADER error.
type redirectedError struct{ err error }

func (r *redirectedError) Error() string { return r.err.Error() }
func (r *redirectedError) Unwrap() error { return r.err }

func redirected(err error) bool {
	var r *redirectedError
	return errors.As(err, &r)
}

// leaderErr is how a leader-routed call reports an error the broker at
// via returned for parts of topic: if it is a NOT_LEADER naming the new
// leader of a single partition, the hint is recorded and the error marked
// redirected. A whole-call error for several partitions says nothing
// certain about each, so its hint is not used.
func (c *Client) leaderErr(topic string, parts []int32, via string, err error) error {
	if err == nil || len(parts) != 1 || !c.meta.redirect(topic, parts[0], via, err) {
		return err
	}
	return &redirectedError{err}
}

// worse returns the error of a and b that should decide what a retry loop
// does: one no retry helps first (fail fast), then a retriable one that
// needs fresh metadata, then a redirect, then nil.
func worse(a, b error) error {
	rank := func(err error) int {
		switch {
		case err == nil:
			return 0
		case redirected(err):
			return 1
		case retriable(err):
			return 2
		}
		return 3
	}
	if rank(b) > rank(a) {
		return b
	}
	return a
}

// eachLeader groups parts of topic by their leader and calls send once per
// leader, concurrently, with the partitions it leads; it returns the worst
// error (see worse) of the lookups and the sends. send reports its
// results itself and must be safe for concurrent calls; it should pass
// the errors it returns through leaderErr.
func (c *Client) eachLeader(ctx context.Context, topic string, parts []int32,
	send func(ctx context.Context, cl v1.StrataClient, via string, parts []int32) error) error {
	byLeader := make(map[string][]int32)
	conns := make(map[string]v1.StrataClient)
	for _, p := range parts {
		cl, addr, err := c.meta.leader(ctx, topic, p)
		if err != nil {
			return err
		}
		conns[addr] = cl
		byLeader[addr] = append(byLeader[addr], p)
	}
	var (
		mu    sync.Mutex
		worst error
		wg    sync.WaitGroup
	)
	for _, addr := range slices.Sorted(maps.Keys(byLeader)) {
		wg.Go(func() {
			err := send(ctx, conns[addr], addr, byLeader[addr])
			mu.Lock()
			worst = worse(worst, err)
			mu.Unlock()
		})
	}
	wg.Wait()
	return worst
}
