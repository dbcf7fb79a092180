// Package producers keeps what a partition knows of the idempotent
// producers writing to it, and decides, for each batch one of them sends,
// whether it is new, a retry of a batch already stored, out of sequence or
// from a fenced (older) producer epoch. It is Kafka's producer state
// (KIP-98's idempotent producer), kept as a deterministic state machine:
// no clock, no I/O, no goroutines. Its inputs are the stored batches in
// log order, so every replica that stored the same log holds the same
// state.
//
// A producer is an ID handed out by the cluster and an Epoch; each batch
// it sends to a partition carries the sequence number of its first record
// (BaseSequence), counting records per partition from 0. The state keeps,
// per producer, its epoch and its last Remembered batches: their
// sequences and the offsets they were stored at, so that a retry of any
// of them (a producer keeps at most Remembered requests in flight) is
// answered with the original offsets instead of being stored twice.
//
// Usage, as the partition's log store does:
//
//	st := producers.New(producers.DefaultExpiry)
//	d := st.Check(b)               // b: the batch's producer fields
//	switch d.Verdict {
//	case producers.Append:         // store it; then, with its offsets:
//		st.Apply(b)
//	case producers.Duplicate:      // answer with d.Base, d.Last; store nothing
//	default:                       // refuse with d.Err()
//	}
//
// The caller's duties:
//  1. Apply every stored batch, in log order, with its assigned offsets,
//     including batches written without idempotence (they are ignored)
//     and batches it did not Check (a follower applies what its leader
//     decided).
//  2. Check a batch against the state that includes every batch stored
//     before it: Check and Apply of one batch happen under the same lock
//     as the store, so that two copies of a batch in flight at once are
//     not both found new.
//  3. When the log is cut back (a raft suffix deleted), rebuild the state:
//     from a Snapshot (Encode, Decode) taken at or below the cut, then
//     Apply the batches stored after it.
//  4. Keep the encoded snapshots it may need for that (and for a restart)
//     as files next to the log: their format is in snapshot.go and
//     docs/format/producer-state.md.
//
// Expiry. A producer that has written nothing for Expiry (measured in the
// batches' own timestamps, never a clock, so that every replica expires
// the same producers at the same batch) is forgotten: its next batch is
// refused with UnknownProducer unless it starts a new sequence at 0. Kafka
// uses each broker's wall clock here (producer.id.expiration.ms), which
// can make replicas disagree.
package producers
