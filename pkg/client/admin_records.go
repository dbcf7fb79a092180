package client

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
)

// BeforeHighWatermark, as a DeleteRecords offset, deletes every record
// that consumers can read: the log start moves to the high watermark.
const BeforeHighWatermark int64 = -1

// DeleteRecords deletes the records of topic below the given offset in
// each partition (partition -> offset; BeforeHighWatermark for
// everything), on every replica, by moving the partition's log start
// offset forward; Kafka's DeleteRecords. Each request goes to the
// partition's leader; NOT_LEADER and other retriable errors are retried
// within the client's RetryTimeout.
//
// It returns each partition's log start offset after the call, for the
// partitions that succeeded, and the errors of the others joined, each
// naming its partition (errors.Is works on the result: an immutable
// topic fails every partition with apierr.ErrPolicyViolation, an offset
// past the high watermark with apierr.ErrOffsetOutOfRange). The map is
// valid even when the error is not nil: records are deleted in the
// partitions it lists.
//
// Deleting is idempotent for a fixed offset (a log start already past it
// stays); a retried BeforeHighWatermark may delete records produced
// between the attempts.
func (a *Admin) DeleteRecords(ctx context.Context, topic string, before map[int32]int64) (map[int32]int64, error) {
	for p, o := range before {
		if p < 0 || o < BeforeHighWatermark {
			return nil, apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_REQUEST, "delete records %s/%d before %d: want a partition from 0 and an offset from 0, or -1 for the high watermark", topic, p, o)
		}
	}
	c := a.c
	var mu sync.Mutex
	starts := make(map[int32]int64, len(before))
	failed := make(map[int32]error) // per partition, for good
	deadline := time.Now().Add(c.cfg.retryTimeout)
	err := c.retry(ctx, deadline, func(ctx context.Context, _ int) error {
		var todo []int32
		for _, p := range slices.Sorted(maps.Keys(before)) {
			if _, ok := starts[p]; !ok && failed[p] == nil {
				todo = append(todo, p)
			}
		}
		return c.eachLeader(ctx, topic, todo, func(ctx context.Context, cl v1.StrataClient, via string, parts []int32) error {
			req := &v1.DeleteRecordsRequest{Topic: topic, TimeoutMs: brokerTimeoutMs(ctx, deadline)}
			for _, p := range parts {
				req.Partitions = append(req.Partitions, &v1.DeleteRecordsPartition{Partition: p, BeforeOffset: before[p]})
			}
			resp, err := cl.DeleteRecords(ctx, req)
			if err != nil {
				return c.leaderErr(topic, parts, via, apierr.FromStatus(err))
			}
			mu.Lock()
			defer mu.Unlock()
			var worst error
			for _, r := range resp.GetPartitions() {
				p := r.GetPartition()
				if _, asked := before[p]; !asked {
					continue
				}
				err := apierr.FromProto(r.GetError())
				switch {
				case err == nil:
					starts[p] = r.GetLogStartOffset()
				case retriable(err):
					worst = worse(worst, fmt.Errorf("delete records %s/%d: %w", topic, p, c.leaderErr(topic, []int32{p}, via, err)))
				default:
					failed[p] = fmt.Errorf("delete records %s/%d: %w", topic, p, err)
				}
			}
			for _, p := range parts {
				if _, ok := starts[p]; !ok && failed[p] == nil && worst == nil {
					worst = apierr.New(v1.ErrorCode_ERROR_CODE_UNAVAILABLE, "delete records: no result for %s/%d", topic, p)
				}
			}
			return worst
		})
	})
	var errs []error
	for _, p := range slices.Sorted(maps.Keys(failed)) {
		errs = append(errs, failed[p])
	}
	if err != nil {
		// A whole-call error (an unknown topic, an unreachable leader,
		// time out) stands for every partition not done yet.
		var pending []int32
		for _, p := range slices.Sorted(maps.Keys(before)) {
			if _, ok := starts[p]; !ok && failed[p] == nil {
				pending = append(pending, p)
			}
		}
		if len(pending) < len(before) {
			err = fmt.Errorf("delete records %s, partitions %v: %w", topic, pending, err)
		}
		errs = append(errs, err)
	}
	return starts, errors.Join(errs...)
}

// brokerTimeoutMs is the wait to ask of a broker: what is left of the
// call, within the attempt's own deadline less a margin for the reply.
func brokerTimeoutMs(ctx context.Context, deadline time.Time) int32 {
	left := time.Until(deadline)
	if d, ok := ctx.Deadline(); ok {
		left = min(left, time.Until(d)-time.Second)
	}
	return int32(max(left, time.Millisecond).Milliseconds())
}
