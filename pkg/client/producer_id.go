package client

import (
	"context"
	"errors"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	v1 "github.com/stratalog/strata/api/v1"
)

// producerID is an idempotent producer's identity (InitProducerId), taken
// at its first send and again after a batch whose outcome is unknown.
//
// Why a new id then: a batch that failed after it may have been stored
// (its delivery timeout ran out while a reply was lost) leaves the
// partition's expected sequence unknown. The next batch would be refused
// as out of order if the failed one was not stored, or taken for the
// missing one's successor if it was. Kafka's producer bumps its epoch
// there (KIP-360); a new id does the same without a coordinator: every
// partition starts again at sequence 0 under it.
type producerID struct {
	mu    sync.Mutex
	id    int64 // -1: none yet, or idempotence off
	epoch int16
	gen   int  // counts ids taken; a partition's sequence belongs to one
	off   bool // the brokers do not support it (older version)
}

// noProducer marks a batch written without idempotence.
const noProducer = -1

// current returns the id to write with, taking one from the cluster if
// there is none. With idempotence off (or unsupported), id is noProducer.
func (p *Producer) current(ctx context.Context) (id int64, epoch int16, gen int, err error) {
	if !p.cfg.idempotent || p.cfg.acks == AcksNone {
		return noProducer, -1, 0, nil
	}
	pid := &p.pid
	pid.mu.Lock()
	defer pid.mu.Unlock()
	if pid.off {
		return noProducer, -1, 0, nil
	}
	if pid.id >= 0 {
		return pid.id, pid.epoch, pid.gen, nil
	}
	var resp *v1.InitProducerIdResponse
	err = p.c.call(ctx, func(ctx context.Context, cl v1.StrataClient) (err error) {
		resp, err = cl.InitProducerId(ctx, &v1.InitProducerIdRequest{})
		if status.Code(err) == codes.Unimplemented {
			return errNoIdempotence
		}
		return err
	})
	if errors.Is(err, errNoIdempotence) {
		p.c.log.Warn("the brokers do not hand out producer ids (an older version): producing without idempotence; a retry may store a record twice")
		pid.off = true
		return noProducer, -1, 0, nil
	}
	if err != nil {
		return noProducer, -1, 0, err
	}
	pid.id, pid.epoch = resp.GetProducerId(), int16(resp.GetProducerEpoch())
	pid.gen++
	return pid.id, pid.epoch, pid.gen, nil
}

var errNoIdempotence = errors.New("client: the broker does not support idempotent producers")

// forget drops the id of generation gen after a batch whose outcome is
// unknown, so the next batch takes a new one.
func (p *Producer) forget(gen int) {
	p.pid.mu.Lock()
	if p.pid.gen == gen {
		p.pid.id = noProducer
	}
	p.pid.mu.Unlock()
}
