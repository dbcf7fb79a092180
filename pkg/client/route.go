package client

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
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
// certain about each, so its hint is not used. A leader that cannot be
// reached at its advertised address gets an AdvertisedUnreachableError.
func (c *Client) leaderErr(topic string, parts []int32, via string, err error) error {
	err = c.meta.advertisedErr(via, err)
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
	tps := make([]TopicPartition, len(parts))
	for i, p := range parts {
		tps[i] = TopicPartition{topic, p}
	}
	return c.eachLeaderOf(ctx, tps, func(ctx context.Context, cl v1.StrataClient, via string, tps []TopicPartition) error {
		ps := make([]int32, len(tps))
		for i, tp := range tps {
			ps[i] = tp.Partition
		}
		return send(ctx, cl, via, ps)
	})
}

// eachLeaderOf is eachLeader for partitions of any topics: one call of
// send per leader, with the partitions it leads, in the order given.
func (c *Client) eachLeaderOf(ctx context.Context, tps []TopicPartition,
	send func(ctx context.Context, cl v1.StrataClient, via string, tps []TopicPartition) error) error {
	byLeader := make(map[string][]TopicPartition)
	conns := make(map[string]v1.StrataClient)
	for _, tp := range tps {
		cl, addr, err := c.meta.leader(ctx, tp.Topic, tp.Partition)
		if err != nil {
			return err
		}
		conns[addr] = cl
		byLeader[addr] = append(byLeader[addr], tp)
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

// fetchReply is one leader's answer to a fetch, and its address.
type fetchReply struct {
	via  string
	resp *v1.FetchResponse
}

// fetchLeaders sends one fetch per leader for the partitions in pos
// (each from its offset there), concurrently, and returns the replies
// and the worst error of the calls that failed as a whole (passed
// through leaderErr). The caller decodes the replies.
func (c *Client) fetchLeaders(ctx context.Context, pos map[TopicPartition]int64, maxWait time.Duration, maxBytes int32) ([]fetchReply, error) {
	var (
		mu      sync.Mutex
		replies []fetchReply
	)
	failure := c.eachLeaderOf(ctx, sortedTPs(pos), func(ctx context.Context, cl v1.StrataClient, via string, tps []TopicPartition) error {
		req := &v1.FetchRequest{MaxWaitMs: int32(maxWait.Milliseconds()), MinBytes: 1, MaxBytes: maxBytes}
		for _, tp := range tps {
			req.Partitions = append(req.Partitions, &v1.FetchPartition{Topic: tp.Topic, Partition: tp.Partition, Offset: pos[tp], MaxBytes: maxBytes})
		}
		resp, err := cl.Fetch(ctx, req)
		if err != nil {
			err = apierr.FromStatus(err)
			if len(tps) == 1 {
				err = c.leaderErr(tps[0].Topic, []int32{tps[0].Partition}, via, err)
			}
			return err
		}
		mu.Lock()
		replies = append(replies, fetchReply{via, resp})
		mu.Unlock()
		return nil
	})
	return replies, failure
}

// collectFetched decodes the replies of fetchLeaders with handle (one
// partition's result, from the broker at via), on the calling goroutine.
// A partition with a retriable error is left for the next attempt; if no
// partition returned records, the error that matters most (see worse) is
// returned so the caller retries, and failure (the whole calls' worst
// error) counts too.
func (c *Client) collectFetched(ctx context.Context, replies []fetchReply, failure error,
	handle func(ctx context.Context, pr *v1.FetchPartitionResult, via string) ([]*Record, error)) ([]*Record, error) {
	if failure != nil && !retriable(failure) {
		return nil, failure
	}
	var out []*Record
	for _, rp := range replies {
		for _, pr := range rp.resp.GetPartitions() {
			recs, err := handle(ctx, pr, rp.via)
			out = append(out, recs...)
			if err != nil && !retriable(err) {
				return out, err
			}
			failure = worse(failure, err)
		}
	}
	if len(out) > 0 {
		if failure != nil && !redirected(failure) {
			c.meta.invalidate() // the failed partitions try fresh routes next time
		}
		return out, nil
	}
	return nil, failure
}
