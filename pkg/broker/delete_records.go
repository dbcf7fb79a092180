package broker

import (
	"context"
	"time"

	"go.uber.org/zap"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
)

// DeleteRecords moves each partition's log start forward on purpose, on
// every replica, at the partition's leader.
//
// Whole-call error: POLICY_VIOLATION for an internal topic.
// Per-partition errors: UNKNOWN_TOPIC, UNKNOWN_PARTITION, NOT_LEADER,
// POLICY_VIOLATION (immutable topic), OFFSET_OUT_OF_RANGE (beyond the high
// watermark), UNAVAILABLE.
func (b *Broker) DeleteRecords(ctx context.Context, req *v1.DeleteRecordsRequest) (*v1.DeleteRecordsResponse, error) {
	timeout := b.cfg.ProduceTimeout
	if req.TimeoutMs > 0 {
		timeout = min(timeout, time.Duration(req.TimeoutMs)*time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := refuseInternal("delete records of", req.Topic); err != nil {
		return nil, apierr.ToStatus(err)
	}
	resp := &v1.DeleteRecordsResponse{}
	for _, dp := range req.Partitions {
		r := &v1.DeleteRecordsPartitionResult{Partition: dp.Partition, LogStartOffset: -1}
		resp.Partitions = append(resp.Partitions, r)
		p, err := b.leaderFor(req.Topic, dp.Partition)
		if err == nil {
			r.LogStartOffset, err = p.DeleteRecords(ctx, dp.BeforeOffset)
		}
		if err != nil {
			r.Error = apierr.ToProto(err)
			continue
		}
		b.log.Info("records deleted on request", zap.String("topic", req.Topic), zap.Int32("partition", dp.Partition), zap.Int64("log_start", r.LogStartOffset))
	}
	return resp, nil
}
