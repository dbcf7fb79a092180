package broker

import (
	"context"
	"fmt"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
)

// LogChecksums (internal) checksums this broker's replica of a partition
// in runs of offsets, for VerifyPartition (segment.Log.Checksums).
//
// Errors: NOT_LEADER when the broker holds no replica of the group,
// INVALID_REQUEST for a bad range, STORAGE when the replica cannot be read
// (a damaged segment).
func (b *Broker) LogChecksums(ctx context.Context, req *v1.LogChecksumsRequest) (*v1.LogChecksumsResponse, error) {
	part, ok := b.replicas.get(req.Group)
	if !ok {
		return nil, apierr.ToStatus(&apierr.Error{Code: v1.ErrorCode_ERROR_CODE_NOT_LEADER,
			Message: fmt.Sprintf("broker %d holds no replica of group %s", b.cfg.NodeID, req.Group)})
	}
	if req.Step < 1 || req.ToOffset < req.FromOffset {
		return nil, apierr.ToStatus(apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_REQUEST, "checksums of [%d, %d) by %d: bad range", req.FromOffset, req.ToOffset, req.Step))
	}
	sums, err := part.Group().Log().Checksums(req.FromOffset, req.ToOffset, req.Step)
	if err != nil {
		return nil, apierr.ToStatus(apierr.New(v1.ErrorCode_ERROR_CODE_STORAGE, "checksums of %s on broker %d: %v", req.Group, b.cfg.NodeID, err))
	}
	resp := &v1.LogChecksumsResponse{Ranges: make([]*v1.OffsetRange, len(sums))}
	for i, s := range sums {
		resp.Ranges[i] = &v1.OffsetRange{FromOffset: s.From, FirstBatch: s.FirstBatch, Batches: s.Batches, Bytes: s.Bytes, Crc: s.CRC}
	}
	return resp, nil
}
