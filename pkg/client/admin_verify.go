package client

import (
	"context"

	v1 "github.com/stratalog/strata/api/v1"
)

// VerifyPartition compares a partition's replicas batch by batch up to the
// high watermark they all have and reports whether they agree, or the
// base offset of the first batch where they differ. It reads every
// replica's copy of that range once, in checksums: on a large partition
// it takes as long as reading the partition from disk. Any broker can take
// the call. A replica that cannot be read is reported with its error and
// left out of the comparison.
func (a *Admin) VerifyPartition(ctx context.Context, topic string, partition int32) (PartitionVerification, error) {
	var resp *v1.VerifyPartitionResponse
	err := a.c.call(ctx, func(ctx context.Context, cl v1.StrataClient) (err error) {
		resp, err = cl.VerifyPartition(ctx, &v1.VerifyPartitionRequest{Topic: topic, Partition: partition})
		return err
	})
	if err != nil {
		return PartitionVerification{}, err
	}
	return verificationFromProto(resp), nil
}
