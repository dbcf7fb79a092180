package producers

import (
	"fmt"
	"math"
	"slices"
)

// ID identifies a producer; the cluster hands it out. NoID (-1) marks a
// batch written without idempotence, which the state ignores.
type ID int64

// NoID is the producer id of a batch written without idempotence.
const NoID ID = -1

func (id ID) String() string { return fmt.Sprintf("producer %d", int64(id)) }

// Epoch is a producer's epoch: a higher one fences the lower (a restarted
// transactional producer, or the same id handed out again).
type Epoch int16

// Remembered is how many of a producer's last batches the state keeps, so
// that a retry of any of them is recognised: the most requests a producer
// may have in flight per partition (Kafka's
// max.in.flight.requests.per.connection, 5).
const Remembered = 5

// DefaultExpiry is how long a producer that writes nothing is remembered,
// in milliseconds of batch timestamps (Kafka's producer.id.expiration.ms
// default: one day).
const DefaultExpiry = 24 * 60 * 60 * 1000

// Batch is what the state needs of one batch: its producer fields
// (RecordBatch v2's ProducerID, ProducerEpoch, BaseSequence and record
// count) and, once stored, its offsets and newest timestamp.
type Batch struct {
	Producer ID
	Epoch    Epoch
	FirstSeq int32 // the sequence number of its first record
	Count    int32 // records in it, ≥ 1
	// Base and Last are the offsets of its first and last records, set
	// once it is stored (Apply); Check ignores them.
	Base, Last int64
	// MaxTimestamp is its newest record's timestamp, in unix ms.
	MaxTimestamp int64
}

// LastSeq is the sequence number of the batch's last record. Sequences
// wrap to 0 after math.MaxInt32, as Kafka's do.
func (b Batch) LastSeq() int32 { return AddSeq(b.FirstSeq, b.Count-1) }

// AddSeq is the sequence n records after seq, wrapping to 0 after
// math.MaxInt32 as the brokers and Kafka's producers do.
func AddSeq(seq, n int32) int32 {
	if seq > math.MaxInt32-n {
		return n - (math.MaxInt32 - seq) - 1
	}
	return seq + n
}

// Verdict is what Check decides for a batch.
type Verdict uint8

const (
	// Append: a new batch, in sequence (or written without idempotence).
	Append Verdict = iota
	// Duplicate: a retry of a remembered batch; answer with its offsets.
	Duplicate
	// OutOfOrder: its first sequence is not the next one expected (a
	// batch in between was lost): Kafka's OUT_OF_ORDER_SEQUENCE_NUMBER.
	OutOfOrder
	// Fenced: its epoch is older than the producer's current one.
	Fenced
	// UnknownProducer: the state holds no such producer (never seen, or
	// expired) and the batch does not start a sequence at 0.
	UnknownProducer
)

func (v Verdict) String() string {
	switch v {
	case Append:
		return "append"
	case Duplicate:
		return "duplicate"
	case OutOfOrder:
		return "out of order"
	case Fenced:
		return "fenced"
	case UnknownProducer:
		return "unknown producer"
	}
	return fmt.Sprintf("Verdict(%d)", uint8(v))
}

// Decision is Check's answer.
type Decision struct {
	Verdict Verdict
	// Base and Last: a Duplicate's original offsets.
	Base, Last int64
	// Expected: the sequence an OutOfOrder batch should have started at.
	Expected int32
	// Epoch: the producer's current epoch (for Fenced).
	Epoch Epoch
	batch Batch
}

// Err is the refusal a Decision stands for, nil for Append and Duplicate.
// The messages say what the producer must do.
func (d Decision) Err() error {
	b := d.batch
	switch d.Verdict {
	case OutOfOrder:
		return fmt.Errorf("out of order sequence: %s epoch %d sent sequence %d, expected %d (a batch before it was lost: the producer must fail these records or start a new producer id)", b.Producer, b.Epoch, b.FirstSeq, d.Expected)
	case Fenced:
		return fmt.Errorf("producer fenced: %s epoch %d is older than its current epoch %d (another instance took over: this one must stop)", b.Producer, b.Epoch, d.Epoch)
	case UnknownProducer:
		return fmt.Errorf("unknown producer: %s (expired after idling, or never seen) sent sequence %d, not 0: the producer must start a new producer id", b.Producer, b.FirstSeq)
	}
	return nil
}

// stored is one remembered batch.
type stored struct {
	firstSeq, lastSeq int32
	base, last        int64
}

// entry is one producer's state.
type entry struct {
	epoch Epoch
	// batches: the last ≤ Remembered batches, oldest first.
	batches []stored
	// lastWrite: the newest timestamp of its batches (unix ms).
	lastWrite int64
}

// State is a partition's producer state. It is not safe for concurrent
// use: its owner serializes Check and Apply with the log's writes.
type State struct {
	expiry int64 // ms; ≤ 0: never expire
	byID   map[ID]*entry
	// clock: the newest batch timestamp applied (unix ms), what expiry
	// is measured against; swept: the clock at the last sweep.
	clock, swept int64
	// end: the offset after the last batch applied.
	end int64
}

// New returns an empty state that forgets producers idle for expiry
// milliseconds of batch time (≤ 0: never).
func New(expiry int64) *State {
	return &State{expiry: expiry, byID: map[ID]*entry{}}
}

// Len is the number of producers remembered.
func (s *State) Len() int { return len(s.byID) }

// End is the offset after the last batch applied: a snapshot of this
// state covers the log below it.
func (s *State) End() int64 { return s.end }

// Check decides what to do with b, which has not been stored.
func (s *State) Check(b Batch) Decision {
	d := Decision{batch: b}
	if b.Producer == NoID {
		return d
	}
	e, ok := s.byID[b.Producer]
	if !ok {
		if b.FirstSeq != 0 {
			d.Verdict = UnknownProducer
		}
		return d
	}
	d.Epoch = e.epoch
	switch {
	case b.Epoch < e.epoch:
		d.Verdict = Fenced
		return d
	case b.Epoch > e.epoch:
		// A new epoch starts its sequence afresh.
		if b.FirstSeq != 0 {
			d.Verdict, d.Expected = OutOfOrder, 0
		}
		return d
	}
	last := b.LastSeq()
	for _, st := range e.batches {
		if st.firstSeq == b.FirstSeq && st.lastSeq == last {
			d.Verdict, d.Base, d.Last = Duplicate, st.base, st.last
			return d
		}
	}
	if len(e.batches) > 0 {
		if next := AddSeq(e.batches[len(e.batches)-1].lastSeq, 1); b.FirstSeq != next {
			d.Verdict, d.Expected = OutOfOrder, next
		}
	}
	return d
}

// Apply records b, stored at b.Base..b.Last: every stored batch, in log
// order (duty 1 in the package doc). It does not check b: the leader did.
func (s *State) Apply(b Batch) {
	s.end = max(s.end, b.Last+1)
	if b.MaxTimestamp > s.clock {
		s.clock = b.MaxTimestamp
	}
	if b.Producer != NoID {
		e, ok := s.byID[b.Producer]
		if !ok || b.Epoch != e.epoch {
			e = &entry{epoch: b.Epoch}
			s.byID[b.Producer] = e
		}
		if len(e.batches) == Remembered {
			e.batches = slices.Delete(e.batches, 0, 1)
		}
		e.batches = append(e.batches, stored{firstSeq: b.FirstSeq, lastSeq: b.LastSeq(), base: b.Base, last: b.Last})
		e.lastWrite = max(e.lastWrite, b.MaxTimestamp)
	}
	s.sweep()
}

// sweepEvery: the state looks for expired producers when the batch clock
// has moved this much (or the expiry, if shorter) since the last look, so
// that Apply stays O(1) on average.
const sweepEvery = 60 * 1000

// sweep forgets the producers idle for the expiry. Deterministic: it
// depends only on the batches applied.
func (s *State) sweep() {
	if s.expiry <= 0 || s.clock-s.swept < min(s.expiry, sweepEvery) {
		return
	}
	s.swept = s.clock
	for id, e := range s.byID {
		if e.lastWrite < s.clock-s.expiry {
			delete(s.byID, id)
		}
	}
}
