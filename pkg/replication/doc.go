// Package replication makes one partition's log a Raft group
// (hashicorp/raft): every replica of the partition holds the same log,
// the leader accepts appends, and a record is acknowledged and shown to
// consumers only once a majority stored it.
//
// It owns, per partition replica: the LogStore that makes the partition's
// segment.Log the group's raft log, the FSM that keeps the high watermark,
// the snapshot store, and the raft node (Group). Per broker: the one file
// holding every group's term and vote (StableStores). It does not own the
// transport (pkg/replication/transport, one raft.Transport per group over
// shared connections), batch validation (the caller checks CRCs), or
// retention.
//
//	broker A                                               broker B, C
//	+--------------------------------------------------+
//	| StableStores  raft.db (one bolt file)            |
//	|   "<group>"+key -> term, vote; fsync per Set     |
//	|                                                  |
//	| Group "t/0"                                      |
//	|   raft.Raft ------ Transport (this group only) --------> Group "t/0"
//	|     | StoreLogs, GetLog, DeleteRange             |        (same parts)
//	|     v                                            |
//	|   LogStore ---- recent: last entries in memory   |
//	|     |                                            |
//	|     v                                            |
//	|   segment.Log  <dir>/*.log, *.index  = the raft  |
//	|     batch entries: record batches, take offsets  |   log AND the
//	|     raft entries: no-op, config, no offsets      |   partition log
//	|   fsm: high watermark; Changed() wakes fetches   |
//	|   snapshots: <dir>/snapshots/ (hwm, index only)  |
//	|   logCopy: <dir>/logcopy/, the leader's log      |
//	|     staged for a snapshot install                |
//	|                                                  |
//	| Group "t/1" ...                                  |
//	+--------------------------------------------------+
//
// How a record gets its offset:
//
//  1. A producer's batch reaches the leader's Group.Apply, which checks
//     its framing and queues it with raft.Apply (one raft entry per batch;
//     the batches of one call are queued consecutively).
//  2. Raft's leader loop takes every queued entry (up to MaxAppendEntries),
//     numbers them with raft indexes and the current term, and calls
//     LogStore.StoreLogs once: segment.Log.Append assigns each batch the
//     next offsets (rewriting its base offset), one write(2), one fsync.
//  3. Raft sends the entries, base offsets already rewritten, to the
//     followers. Each follower's StoreLogs stores them the same way and
//     assigns the same offsets: same log, same order, same offsets.
//  4. When a majority has stored an entry, it is committed; each replica's
//     FSM applies it and moves the high watermark to the batch's next
//     offset, waking waiters on Changed. Apply returns the batch's offsets.
//     Consumers read below the high watermark only.
//
// What happens on a leader change:
//
//   - A new leader is elected among the replicas whose log is at least as
//     up to date (each has fsynced its log and its term/vote before
//     answering, so the check means something). It appends a no-op entry
//     in its term, which occupies no offset; committing it commits
//     everything before it, and the high watermark catches up to the log
//     end. Until then, the high watermark stays where it was: nothing
//     uncommitted is ever shown.
//   - A follower whose log holds entries the new leader does not (an old
//     leader's uncommitted tail) gets them truncated: raft calls DeleteRange
//     up to the end of the log, which is TruncateSuffix; the leader's
//     entries then take the same offsets the truncated ones had. An Apply
//     that was waiting on the old leader returns ErrIndeterminate: its
//     batch may or may not have survived.
//   - A replica that was down or cut off catches up by normal replication
//     from the leader's log: raft's log compaction (DeleteRange from the
//     first index, after each snapshot) is ignored, so the leader always
//     has the entries, unless retention deleted them. Snapshots hold only
//     offsets; an install (a new replica, or one that needs entries
//     retention deleted) stands for the leader's log, which the replica
//     copies in chunks into <dir>/logcopy/ before raft sees the install,
//     resuming after any interruption, and then swaps in (logcopy.go).
//     Without a LogSource installs are refused with ErrSnapshotInstall.
//
// Usage:
//
//	stable, err := replication.OpenStableStores(filepath.Join(dataDir, "raft.db"))
//	...
//	g, err := replication.OpenGroup(replication.GroupConfig{
//		Group: "t/0", NodeID: "b1", Dir: partitionDir,
//		SegmentOptions: segment.DefaultOptions(),
//		Transport: trans, Stable: stable.For("t/0"),
//		Bootstrap: replicas, FsyncEveryAppend: true, Logger: logger,
//	})
//	defer g.Close()
//	base, last, err := g.Apply(ctx, [][]byte{batch}) // at the leader
//	ch := g.Changed(); hwm := g.HighWatermark()       // for fetches
//	b, err := g.Log().Read(offset, hwm, maxBytes)
//
// The caller's duties:
//
//  1. Give every group its own raft.Transport and its own Dir; share one
//     StableStores per broker and close it after every Group.
//  2. Validate each batch (record.Validate, CRC included) before Apply:
//     what is applied is replicated and kept as is.
//  3. Hand Apply slices it will not touch again: their base offsets are
//     rewritten and raft keeps and sends them after Apply returns.
//     Likewise a transport must deliver entries whose Data it does not
//     reuse: the LogStore caches recent entries.
//  4. Treat ErrIndeterminate (and a cancelled context) as "maybe
//     committed": retry only with idempotent producers, or report the
//     outcome as unknown.
//  5. Read the log only below HighWatermark, and never write to it: raft
//     is its writer. Serve reads as leader only after ReadLease returns
//     nil: IsLeader alone may be stale for seconds (lease.go).
//  6. To move a replica: AddNonvoter on the leader, wait until it caught
//     up, AddVoter, then RemoveServer the old one and Close it there;
//     StableStores.Delete its group if the directory is removed.
//  7. Bootstrap only with the same voter list on every initial replica.
//
// Durability: with FsyncEveryAppend (the default policy) every replica
// fsyncs before acknowledging an append or a vote, so an acknowledged
// batch survives the loss of any minority, power loss included. With the
// interval policy, a simultaneous power loss of a majority can lose
// acknowledged batches (the NATS JetStream 2025 finding), and a replica
// whose snapshot is newer than its surviving log falls back to an older
// snapshot at start.
package replication
