// Package segment stores a partition's log on disk: a directory of
// segment files holding raft entries, most of them Kafka record batches.
//
// It owns the files of one directory and nothing else: their format
// (format.go, docs/format/segment.md), offset assignment (each batch gets
// the next offsets as it is appended), the sparse offset, raft-index and
// time indexes, rolling segments by size and age, truncation at both ends,
// key compaction of closed segments (Compact: compact.go, cleaner.go,
// swap.go), and recovery of a torn tail or an interrupted compaction swap
// after a crash, told apart from damage below the tail (damage.go). It does not replicate, decide retention or when to
// compact, check batch CRCs on append, or fsync on its own: the partition
// and replication packages above it do that.
//
// Every entry carries a raft index and term, so the log can serve as a
// hashicorp/raft LogStore: EntryBatch entries hold one record batch and
// occupy offsets; EntryRaft entries (no-ops, configuration) occupy none
// and are never shown to consumers.
//
// Usage:
//
//	l, err := segment.Open(dir, segment.DefaultOptions())
//	if err != nil { ... }
//	defer l.Close()
//	bases, err := l.Append(segment.Entry{Index: 1, Term: 1, Type: segment.EntryBatch, Data: batch})
//	if err := l.Sync(); err != nil { ... }     // now durable: acknowledge
//	b, err := l.Read(bases[0], highWatermark, 1<<20) // whole batches, Kafka bytes
//	e, err := l.ReadEntry(1)                   // by raft index
//	es, rw, err := l.ReadEntries(1, 256<<10)   // by raft index, in order, one read
//	if r := l.RecoveryReport(); r != nil { ... } // Open cut a torn tail
//	st, err := l.Compact(ctx, segment.CompactOptions{UpTo: hw - lag, Now: nowMs, DeleteRetention: 24 * time.Hour})
//
// Caller's duties:
//  1. One goroutine writes: Append, Sync, Roll, TruncateSuffix,
//     TruncatePrefix, Reset, MarkDamaged, ClearDamage and Close are never
//     called concurrently with each other. Read, ReadEntry, ReadEntries,
//     OffsetForTimestamp, Verify, Scrub and the accessors may be called
//     from any goroutine at any time.
//  2. Readers serving consumers pass the high watermark as maxOffset: the
//     log returns whatever is stored, committed or not.
//  3. Call Sync before acknowledging an Append: Append leaves the bytes in
//     the page cache, readable but not durable.
//  4. Append mutates Data: it rewrites each batch's base offset in place.
//     Do not share the slice with another goroutine during the call.
//  5. Check each batch (record.Validate, including its CRC) before
//     appending it; the log checks framing only, and then protects what it
//     stored with its own CRC.
//  6. Raft indexes are contiguous: each Append starts at LastIndex()+1.
//     Raft's conflict resolution calls TruncateSuffix first.
//  7. Slices returned by Read, ReadEntry and ReadEntries belong to the
//     caller; the log keeps no reference. Entries kept from ReadEntries
//     are still the log's only while Rewrites has not moved.
//  8. Compact may run on its own goroutine at any time (one run at a
//     time; runs are serialized). Pass UpTo at or below the high
//     watermark, and the same Now and DeleteRetention on every replica;
//     decide when to run from DirtyBytes. Stored batches may be compacted:
//     fewer records than offsets (see record.Filter); advance by the
//     batch's NextOffset. After an error saying the swap is committed,
//     close and reopen the log.
//
// After Open, check RecoveryReport: a non-nil report means entries were
// cut from the tail. If Damage is nil they were a torn write, never synced;
// raft re-replicates them. If Damage is not nil a bad frame had valid
// frames after it: acknowledged entries were cut (and kept aside), and
// DamagedThrough says up to which raft index the log must be refilled
// before its replica may vote again; call ClearDamage once it is.
// A *CorruptionError from Read or Verify means damage in stored data that
// the log will not repair on its own. Scrub re-reads closed segments at a
// rate the caller bounds, to find such damage before a read does; Check
// inspects a log directory offline without changing it (strata-broker
// verify).
package segment
