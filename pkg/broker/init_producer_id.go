package broker

import (
	"context"
	"sync"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/metadata"
)

// InitProducerId hands an idempotent producer a producer id unique in the
// cluster, epoch 0, from this broker's block of ids (producerIDs below).
// An id alone writes nothing: Produce still needs WRITE on the topic.
//
// Errors: INVALID_REQUEST for a transactional id (transactions are not
// there yet); UNAVAILABLE while the metadata quorum cannot give this
// broker a new block (retriable).
func (b *Broker) InitProducerId(ctx context.Context, req *v1.InitProducerIdRequest) (*v1.InitProducerIdResponse, error) {
	if req.TransactionalId != "" {
		return nil, apierr.ToStatus(apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_REQUEST,
			"transactional id %q: transactions are not supported yet; leave it empty for an idempotent producer", req.TransactionalId))
	}
	id, err := b.producerIDs.take(ctx, b)
	if err != nil {
		return nil, apierr.ToStatus(err)
	}
	return &v1.InitProducerIdResponse{ProducerId: id}, nil
}

// producerIDBlock is how many ids a broker takes from the quorum at once.
const producerIDBlock = 1000

// producerIDs is this broker's current block of producer ids
// (metadata/producer_ids.go): handed out one by one, a new block taken
// from the metadata quorum when it runs out. A restart forgets the rest of
// the block; ids are plenty.
type producerIDs struct {
	mu        sync.Mutex
	next, end int64
}

func (p *producerIDs) take(ctx context.Context, b *Broker) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.next < p.end {
		p.next++
		return p.next - 1, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	backoff := 20 * time.Millisecond
	for {
		// The local copy of the metadata may trail the quorum: a block
		// another broker just took is refused, and asked for again once
		// the copy has caught up.
		from := b.meta.NextProducerID()
		err := b.applyMetaOnce(ctx, metadata.AllocateProducerIDs{Broker: b.cfg.NodeID, From: from, Count: producerIDBlock})
		if err == nil {
			p.next, p.end = from+1, from+producerIDBlock
			return from, nil
		}
		if !apierr.Retriable(err) {
			return 0, err
		}
		select {
		case <-ctx.Done():
			return 0, apierr.New(v1.ErrorCode_ERROR_CODE_UNAVAILABLE, "no producer id: the metadata quorum gave this broker no block of ids within 10s (%v); retry", err)
		case <-time.After(backoff):
			backoff = min(2*backoff, 500*time.Millisecond)
		}
	}
}
