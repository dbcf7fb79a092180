// Package partition owns one replica of a partition: it validates what
// producers send, submits it to the partition's Raft group
// (pkg/replication), and serves reads up to the high watermark, waking
// long-polling fetches when it moves.
//
// The write path. Producers call Append from any number of goroutines;
// their batches are validated in the caller's goroutine (CRC, framing,
// records, max.message.bytes: CPU work that spreads over cores), then handed
// to the group's Apply. Raft's leader loop takes every Apply waiting at that
// moment and stores them with one write and one fsync (StoreLogs), on the
// leader and on each follower: that is the group commit. Once a majority has
// them, the FSM moves the high watermark and Append returns the offsets.
//
//	producers ──Append──▶ validate ──▶ Group.Apply ──▶ raft: StoreLogs (one write, one fsync) ──▶ followers
//	                                                        │ majority
//	consumers ──Read(offset < hwm)◀── Changed() wakes ◀── FSM: hwm = next offset
//
// Usage:
//
//	p, err := partition.Open(partition.Options{Dir: dir, Topic: "orders", ID: 0, Group: g, Config: cfg,
//		NodeID: "1", Transport: tr, Stable: stable, Bootstrap: initialReplicas})
//	defer p.Close()
//	res, err := p.Append(ctx, [][]byte{batch}, partition.AcksQuorum)
//	data, err := p.Read(res.Base, 1<<20)
//
// Caller's duties:
//  1. Close the partition: it owns its Raft group and a few goroutines.
//  2. Append takes ownership of the batch slices (their base offsets are
//     rewritten in place); do not reuse them.
//  3. An Append that returns a context error, or UNAVAILABLE after a
//     leadership change, may or may not have been written: report it as
//     indeterminate, never as a definite failure.
//  4. Only the leader appends and serves reads to clients; elsewhere Append
//     answers NOT_LEADER naming the leader when known.
package partition
