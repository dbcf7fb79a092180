package broker

import (
	"context"

	"github.com/stratalog/strata/pkg/partition"
)

// Reads answer only from a leader that holds a read lease: raft calls it
// leader, and a majority of the partition's voters acknowledged it within a
// heartbeat timeout, by the monotonic clock (replication/lease.go). Raft's
// own belief is not enough: with its timers twenty heartbeat timeouts long
// (failover.go), a leader deposed by an election it did not hear of keeps
// believing it for seconds, and would serve records and consumer group state
// that have moved on. A deposed leader's reads are stale by at most one
// heartbeat timeout (docs/architecture.md). Writes need no lease: they
// commit only through a majority of the current term.

// readLeaderFor is leaderFor for a read (fetch, list offsets): this
// broker's replica, if it leads the partition and holds a read lease,
// waiting for the lease up to a heartbeat timeout; otherwise NOT_LEADER.
func (b *Broker) readLeaderFor(ctx context.Context, topic string, p int32) (*partition.Partition, error) {
	part, err := b.leaderFor(topic, p)
	if err != nil {
		return nil, err
	}
	if err := b.readLease(ctx, part); err != nil {
		return nil, err
	}
	return part, nil
}

// renewReadLeases starts renewing the read leases, where running out, of
// the partitions this broker leads among n named by at(i), so that a
// request's reads wait for one confirmation round rather than one per
// partition in turn.
func (b *Broker) renewReadLeases(n int, at func(i int) (string, int32)) {
	for i := range n {
		if part, err := b.leaderFor(at(i)); err == nil {
			part.RenewReadLease()
		}
	}
}

// readLease checks part's read lease, waiting for a confirmation up to a
// heartbeat timeout (one takes a heartbeat round, a third of one, and a
// round trip).
func (b *Broker) readLease(ctx context.Context, part *partition.Partition) error {
	lctx, cancel := context.WithTimeout(ctx, b.cfg.RaftHeartbeatTimeout)
	defer cancel()
	if err := part.ReadLease(lctx); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		return err
	}
	return nil
}
