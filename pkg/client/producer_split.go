package client

import (
	"context"
	"errors"

	"go.uber.org/zap"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/record"
)

// Batches under the topic's limit.
//
// A partition refuses a batch whose encoded size is over the topic's
// max.message.bytes (RECORD_TOO_LARGE), and stores nothing of it. The
// producer keeps every batch under it in two steps:
//
//  1. Sizing. Metadata carries each topic's max.message.bytes
//     (TopicMetadata.max_message_bytes), so a partition's batches are cut
//     at min(BatchMaxBytes, max.message.bytes - the 61-byte batch header),
//     counted in Record.size, which allows more per record than the
//     encoding takes (varint lengths, offset and timestamp deltas). Before
//     sending, the encoded batch is measured against the limit itself, so
//     records whose encoding outgrows the estimate (large timestamp deltas)
//     split instead of being refused.
//  2. Splitting. When the partition refuses a batch all the same (the limit
//     was lowered since metadata was loaded, or the broker predates the
//     field), the batch is split in two halves, records in order, and the
//     first half is sent, then the second, each encoded anew; a half that
//     is still too large splits again. The metadata is reloaded first, so
//     the batches that follow are sized under the new limit.
//
// Sequence numbers: a refusal by size comes before the partition looks at
// the producer's sequence, so the refused batch's numbers were not taken.
// The first half reuses its base sequence and the second follows it, and
// the producer keeps its id (no forget, see producer_id.go). The exception
// is a refusal on a retry after an attempt that got no answer: that attempt
// may have been stored under the old limit, and resending its records
// split would store them twice, so the batch fails (with the reason), as
// any batch whose outcome is unknown does.
//
// A single record over the limit cannot split: it fails with the
// partition's RECORD_TOO_LARGE, and the records around it are sent in
// their own batches.
//
// The rejected alternative was to ask DescribeTopic for the limit before
// the first batch of a topic: one more call per topic, and a limit that
// changes later would still arrive only through a refusal.

// tooLargeError is send's outcome for a batch over the topic's limit whose
// sequence numbers were not taken: nothing of it was stored, so it can be
// split and resent.
type tooLargeError struct {
	err   error
	local bool // refused by overLimit, unsent: the metadata is current
}

func (e *tooLargeError) Error() string { return e.err.Error() }
func (e *tooLargeError) Unwrap() error { return e.err }

// batchBytesLocked is the size, in Record.size units, at which pb's batch
// is full: BatchMaxBytes, or less to fit the topic's max.message.bytes.
// Caller holds p.mu.
func (p *Producer) batchBytesLocked(pb *partBuf) int {
	n := p.cfg.batchMaxBytes
	if pb.maxMessageBytes > 0 {
		n = min(n, max(pb.maxMessageBytes-record.HeaderSize, 1))
	}
	return n
}

// overLimit refuses, before it is sent, a batch of n records that encodes
// to size bytes, over the topic's max.message.bytes as metadata said it.
// A single record is sent all the same: the partition's refusal is the
// error its caller gets, with the partition's own words.
func (p *Producer) overLimit(pb *partBuf, n, size int) error {
	p.mu.Lock()
	limit := pb.maxMessageBytes
	p.mu.Unlock()
	if n < 2 || limit <= 0 || size <= limit {
		return nil
	}
	return &tooLargeError{local: true, err: apierr.New(v1.ErrorCode_ERROR_CODE_RECORD_TOO_LARGE,
		"%s: a batch of %d records encodes to %d bytes, over the topic's max.message.bytes (%d)", pb.tp, n, size, limit)}
}

// sendSplitting sends batch and runs its callbacks; a batch refused as too
// large is split in two halves, sent one after the other (see above).
func (p *Producer) sendSplitting(pb *partBuf, batch []pending) {
	err := p.send(pb, batch)
	var tl *tooLargeError
	if errors.As(err, &tl) {
		if len(batch) < 2 {
			p.finish(batch, tl.err)
			return
		}
		if !tl.local {
			p.learnLimit(pb, batch)
		}
		half := len(batch) / 2
		p.c.log.Debug("splitting a batch over the topic's max.message.bytes", zap.Stringer("partition", pb.tp), zap.Int("records", len(batch)), zap.Error(tl.err))
		p.sendSplitting(pb, batch[:half])
		p.sendSplitting(pb, batch[half:])
		return
	}
	p.finish(batch, err)
}

// learnLimit reloads the topic's metadata after the partition refused a
// batch by size, so the batches that follow are sized under the new limit.
// Bounded by the batch's delivery timeout; on failure the old limit stays
// and halving alone brings the batches under it.
func (p *Producer) learnLimit(pb *partBuf, batch []pending) {
	ctx, cancel := context.WithDeadline(p.ctx, batch[0].enqueued.Add(p.cfg.deliveryTimeout))
	defer cancel()
	p.c.meta.invalidate()
	t, err := p.c.meta.topic(ctx, pb.tp.topic)
	if err != nil || t.maxMessageBytes <= 0 {
		return
	}
	p.mu.Lock()
	pb.maxMessageBytes = t.maxMessageBytes
	p.mu.Unlock()
}
