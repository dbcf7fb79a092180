package replication

import (
	"errors"
	"fmt"
	"sync"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"

	"github.com/stratalog/strata/pkg/producers"
	"github.com/stratalog/strata/pkg/record"
	"github.com/stratalog/strata/pkg/segment"
)

// Idempotent producers (issue 14): the leader decides each batch against
// the partition's producer state (package producers) when raft hands it
// to StoreLogs, which is where the leader's log order is fixed: two copies
// of a batch in flight at once reach StoreLogs one after the other, so the
// second is found a duplicate. A batch that is not to be stored (a
// duplicate, or refused) is rewritten, in place as the base offset is,
// into a producer-verdict control command (control.go, kind 3): it keeps
// its raft index, takes no offsets, and followers store the verdict, not
// the batch, so no replica ever holds the second copy. Applying the
// verdict answers the producer: a duplicate with the first copy's
// offsets, a refusal with its error.
//
//	Produce ─► raft.Apply ─► StoreLogs (leader): Check ─┬─ append: store batch, Apply to state
//	                                                    └─ else: store verdict command
//	commit ─► fsm.ApplyBatch: batch → offsets; verdict → original offsets or error
//
// Two copies of the state, both functions of the log: the LogStore's
// covers every stored entry (what the leader decides against, including
// entries not yet committed), the FSM's covers applied entries (what raft
// snapshots persist, so a restart replays only the entries after the last
// snapshot). When the stored log is cut back (a conflicting suffix, a
// snapshot install), the LogStore's copy is dropped and rebuilt from the
// FSM's plus the stored entries after it: raft never cuts below what it
// applied.

// Producer refusals, as Apply returns them (wrapped with the details).
// None is retriable with the same batch.
var (
	// ErrOutOfOrderSequence: the batch's first sequence is not the next
	// one the partition expects from its producer: a batch before it was
	// lost. Kafka's OUT_OF_ORDER_SEQUENCE_NUMBER.
	ErrOutOfOrderSequence = errors.New("replication: out of order sequence")
	// ErrProducerFenced: the batch's producer epoch is older than the
	// producer's current one.
	ErrProducerFenced = errors.New("replication: producer fenced")
	// ErrUnknownProducer: the partition has no state for the producer
	// (expired after idling) and the batch does not start at sequence 0.
	ErrUnknownProducer = errors.New("replication: unknown producer")
)

// producerBatch is what the producer state needs of a stored batch.
func producerBatch(h record.BatchHeader) producers.Batch {
	return producers.Batch{
		Producer: producers.ID(h.ProducerID), Epoch: producers.Epoch(h.ProducerEpoch),
		FirstSeq: h.BaseSequence, Count: h.RecordCount,
		Base: h.BaseOffset, Last: h.LastOffset(), MaxTimestamp: h.MaxTimestamp,
	}
}

// idempotent reports whether a batch header names a producer.
func idempotent(h record.BatchHeader) bool { return h.ProducerID >= 0 }

// verdictControl is the control command standing for a batch that is not
// stored: kind 3, with
//
//	a: bits 0-7 the verdict (producers.Verdict), 8-23 the batch's epoch,
//	   24-39 the producer's current epoch
//	b: a duplicate's first offset; else the producer id
//	c: a duplicate's last offset; else the batch's first sequence in the
//	   high 32 bits and the expected one in the low 32
func verdictControl(d producers.Decision, b producers.Batch) control {
	c := control{kind: controlProducerVerdict,
		a: int64(d.Verdict) | int64(uint16(b.Epoch))<<8 | int64(uint16(d.Epoch))<<24}
	if d.Verdict == producers.Duplicate {
		c.b, c.c = d.Base, d.Last
	} else {
		c.b, c.c = int64(b.Producer), int64(uint32(b.FirstSeq))<<32|int64(uint32(d.Expected))
	}
	return c
}

// verdictResult is what applying a verdict command answers.
func verdictResult(c control) applyResult {
	v := producers.Verdict(c.a & 0xff)
	epoch, current := int16(uint16(c.a>>8)), int16(uint16(c.a>>24))
	id, seq, expected := c.b, int32(uint32(uint64(c.c)>>32)), int32(uint32(c.c))
	switch v {
	case producers.Duplicate:
		return applyResult{base: c.b, last: c.c, duplicate: true}
	case producers.OutOfOrder:
		return applyResult{err: fmt.Errorf("%w: producer %d epoch %d sent sequence %d, the partition expected %d (a batch before it was lost: fail these records, or start a new producer id)", ErrOutOfOrderSequence, id, epoch, seq, expected)}
	case producers.Fenced:
		return applyResult{err: fmt.Errorf("%w: producer %d epoch %d is older than its current epoch %d (another instance took over; this one must stop)", ErrProducerFenced, id, epoch, current)}
	case producers.UnknownProducer:
		return applyResult{err: fmt.Errorf("%w: producer %d (expired after idling, or never seen here) sent sequence %d, not 0: start a new producer id", ErrUnknownProducer, id, seq)}
	}
	return applyResult{err: fmt.Errorf("replication: unknown producer verdict %d", v)}
}

// appliedProducers is the FSM's copy of the producer state and the raft
// index it reflects.
type appliedProducers struct {
	mu    sync.Mutex
	st    *producers.State
	index uint64
}

// apply records the applied batches (ApplyBatch parsed their headers),
// the last of entries up to index.
func (a *appliedProducers) apply(batches []producers.Batch, index uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, b := range batches {
		a.st.Apply(b)
	}
	a.index = max(a.index, index)
}

// snapshot returns the state's encoding and index.
func (a *appliedProducers) snapshot() ([]byte, uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.st.Encode(), a.index
}

// restore replaces the state with a snapshot's.
func (a *appliedProducers) restore(b []byte, index uint64) error {
	st := producers.New(producers.DefaultExpiry)
	if len(b) > 0 {
		var err error
		if st, err = producers.Decode(b, producers.DefaultExpiry); err != nil {
			return err
		}
	}
	a.mu.Lock()
	a.st, a.index = st, index
	a.mu.Unlock()
	return nil
}

// producerState returns the LogStore's state, rebuilding it if it was
// dropped: the FSM's copy plus the stored entries after it. Caller holds
// wmu.
func (s *LogStore) producerState() (*producers.State, error) {
	if s.prod != nil {
		return s.prod, nil
	}
	st := producers.New(producers.DefaultExpiry)
	var from uint64
	if s.applied != nil {
		b, index := s.applied.snapshot()
		var err error
		if st, err = producers.Decode(b, producers.DefaultExpiry); err != nil {
			return nil, fmt.Errorf("replication: the applied producer state: %w", err)
		}
		from = index
	}
	first, last := s.log.FirstIndex(), s.log.LastIndex()
	replayed := 0
	for i := max(from+1, first); i <= last && last > 0; i++ {
		e, err := s.log.ReadEntry(i)
		if err != nil {
			return nil, fmt.Errorf("replication: rebuild the producer state at entry %d: %w", i, err)
		}
		if e.Type != segment.EntryBatch {
			continue
		}
		h, err := record.ParseHeader(e.Data)
		if err != nil {
			return nil, fmt.Errorf("replication: rebuild the producer state at entry %d: %w", i, err)
		}
		st.Apply(producerBatch(h))
		replayed++
	}
	s.logger.Debug("replication: rebuilt the producer state", zap.Uint64("from_index", from), zap.Int("replayed", replayed), zap.Int("producers", st.Len()))
	s.prod = st
	return st, nil
}

// decide runs the producer check over logs, which StoreLogs is about to
// store from offset next: as leader, a batch not to be stored becomes a
// verdict command; every stored batch is applied to the state. Caller
// holds wmu.
func (s *LogStore) decide(logs []*raft.Log, leader bool) error {
	st, err := s.producerState()
	if err != nil {
		return err
	}
	next := s.log.NextOffset()
	for _, l := range logs {
		if l.Type != raft.LogCommand || isControl(l.Data) {
			continue
		}
		h, err := record.ParseHeader(l.Data)
		if err != nil {
			return fmt.Errorf("replication: raft entry %d: %w", l.Index, err)
		}
		b := producerBatch(h)
		b.Base, b.Last = next, next+int64(h.RecordCount)-1
		if leader && idempotent(h) {
			if d := st.Check(b); d.Verdict != producers.Append {
				l.Data = verdictControl(d, b).encode()
				continue
			}
		}
		st.Apply(b)
		next = b.Last + 1
	}
	return nil
}
