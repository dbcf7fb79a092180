package broker

import (
	"context"
	"errors"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/metadata"
)

// applyMeta commits a metadata change through the quorum from any broker:
// directly on the quorum's leader, forwarded to it from anywhere else, and
// retried while leadership moves (within ctx).
func (b *Broker) applyMeta(ctx context.Context, c metadata.Change) error {
	backoff := 50 * time.Millisecond
	for {
		err := b.applyMetaOnce(ctx, c)
		if err == nil || !apierr.Retriable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
			backoff = min(2*backoff, time.Second)
		}
	}
}

func (b *Broker) applyMetaOnce(ctx context.Context, c metadata.Change) error {
	if b.meta.IsLeader() {
		return b.meta.Apply(ctx, c)
	}
	leader, _ := b.meta.Leader()
	if leader == 0 {
		return apierr.New(v1.ErrorCode_ERROR_CODE_UNAVAILABLE, "the metadata quorum has no leader right now")
	}
	ic, err := b.internalClient(leader)
	if err != nil {
		return err
	}
	enc, err := metadata.EncodeChange(c)
	if err != nil {
		return err
	}
	_, err = ic.ApplyMetadata(ctx, &v1.ApplyMetadataRequest{Change: enc})
	return apierr.FromStatus(err)
}

// ApplyMetadata (internal) applies a change forwarded by another broker.
//
// Errors: NOT_LEADER if this broker no longer leads the quorum (the sender
// retries), INVALID_REQUEST for an undecodable change, and whatever the
// change itself is refused with (e.g. TOPIC_EXISTS).
func (b *Broker) ApplyMetadata(ctx context.Context, req *v1.ApplyMetadataRequest) (*v1.ApplyMetadataResponse, error) {
	c, err := metadata.DecodeChange(req.Change)
	if err != nil {
		return nil, apierr.ToStatus(apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_REQUEST, "%v", err))
	}
	if err := b.meta.Apply(ctx, c); err != nil {
		var e *apierr.Error
		if !errors.As(err, &e) {
			err = apierr.FromError(err)
		}
		return nil, apierr.ToStatus(err)
	}
	return &v1.ApplyMetadataResponse{}, nil
}
