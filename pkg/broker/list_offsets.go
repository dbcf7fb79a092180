package broker

import (
	"context"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
)

// ListOffsets answers, per partition, the earliest offset (log start), the
// latest (high watermark), or the first offset whose batch reaches a
// timestamp (found=false and the high watermark when no record does).
//
// Only a leader holding a read lease answers (read_lease.go).
// Per-partition errors: NOT_LEADER, UNKNOWN_TOPIC, UNKNOWN_PARTITION, STORAGE.
func (b *Broker) ListOffsets(ctx context.Context, req *v1.ListOffsetsRequest) (*v1.ListOffsetsResponse, error) {
	resp := &v1.ListOffsetsResponse{}
	b.renewReadLeases(len(req.Partitions), func(i int) (string, int32) { return req.Partitions[i].Topic, req.Partitions[i].Partition })
	for _, lp := range req.Partitions {
		r := &v1.ListOffsetsPartitionResult{Topic: lp.Topic, Partition: lp.Partition, Offset: -1, TimestampMs: -1}
		resp.Partitions = append(resp.Partitions, r)
		p, err := b.readLeaderFor(ctx, lp.Topic, lp.Partition)
		if err != nil {
			r.Error = apierr.ToProto(err)
			continue
		}
		switch lp.Spec {
		case v1.OffsetSpec_OFFSET_SPEC_EARLIEST:
			r.Offset, r.Found = p.LogStartOffset(), true
		case v1.OffsetSpec_OFFSET_SPEC_LATEST:
			r.Offset, r.Found = p.HighWatermark(), true
		case v1.OffsetSpec_OFFSET_SPEC_TIMESTAMP:
			off, found, err := p.OffsetForTimestamp(lp.TimestampMs)
			if err != nil {
				r.Error = apierr.ToProto(err)
				continue
			}
			if !found {
				off = p.HighWatermark()
			}
			r.Offset, r.Found, r.TimestampMs = off, found, lp.TimestampMs
		default:
			r.Error = apierr.ToProto(apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_REQUEST, "unknown offset spec %d", lp.Spec))
		}
	}
	return resp, nil
}
