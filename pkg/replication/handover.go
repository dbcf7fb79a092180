package replication

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// Leadership hand-over with a bound on how long writes stop.
//
// Raft's leadership transfer refuses every Apply while it runs: it first
// brings the target up to date, then tells it to campaign (TimeoutNow),
// then waits for the target's election to depose this leader. Raft gives
// it up only after its ElectionTimeout, which Strata sets twenty heartbeat
// timeouts long (broker/failover.go): a target that died, was cut off or
// was still far behind after a restart froze the partition's writes for
// 20 s. HandOver waits for the transfer for at most a given time; past
// it, this leader campaigns itself through raft's TimeoutNow path (as the
// broker's elector does for a gone leader): that leaves the leader loop,
// which ends raft's transfer, and with the most up-to-date log it wins the
// new term at once, so writes resume after one election.
//
//	HandOver(to, within)
//	  raft.LeadershipTransferToServer ─► Apply refused meanwhile
//	  done within `within`? ─► the target leads (or raft's error)
//	  else, still leader   ─► campaign (TimeoutNow to self): new term,
//	                          this replica leads again ─► ErrHandOverAbandoned

// ErrHandOverAbandoned: the target did not take over in time, so this
// leader took its partition back. A retry later may succeed.
var ErrHandOverAbandoned = errors.New("replication: leadership transfer abandoned: the target did not take over in time")

// HandOver transfers leadership to the voter to (at addr), giving up after
// within (see above). The caller should first check that to is alive and
// caught up: a transfer to a replica that is behind stops writes while
// raft brings it up to date.
func (g *Group) HandOver(ctx context.Context, to raft.ServerID, addr raft.ServerAddress, within time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !g.enter() {
		return ErrShutdown
	}
	defer g.leave()
	err := g.Successor().handOver(ctx, to, addr, within, g.done, g.logger)
	if errors.Is(err, ErrHandOverAbandoned) {
		return err
	}
	if err == nil {
		g.handedTo.Store(&HandedTo{Addr: addr, At: time.Now()})
	}
	return g.convert(ctx, err, false)
}

// HandedTo is the target of a replica's last completed HandOver, and when
// it completed. Right after a handover the old leader may not have heard
// from the new one yet (raft then knows no leader): if the target dies in
// that moment, this is who the old leader should take for the gone leader
// (broker's elector), instead of waiting to hear from any.
type HandedTo struct {
	Addr raft.ServerAddress
	At   time.Time
}

// handOver is HandOver on s's raft; done closes when that raft shuts down.
func (s Successor) handOver(ctx context.Context, to raft.ServerID, addr raft.ServerAddress, within time.Duration, done <-chan struct{}, log *zap.Logger) error {
	f := s.Raft.LeadershipTransferToServer(to, addr)
	result := make(chan error, 1)
	go func() { result <- f.Error() }() // raft answers it, or shuts down (done)
	timer := time.NewTimer(within)
	defer timer.Stop()
	select {
	case err := <-result:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-done:
		return raft.ErrRaftShutdown
	case <-timer.C:
	}
	// The transfer outlived its time. Campaign unless the target won
	// meanwhile (raft then answers the future shortly).
	if s.Raft.State() == raft.Leader {
		c, ok := s.Transport.(interface{ Campaign(context.Context) error })
		if !ok {
			return ErrHandOverAbandoned // raft's own timeout will end it
		}
		if err := c.Campaign(ctx); err != nil {
			return err
		}
		log.Info("leadership transfer abandoned: the target did not take over in time; campaigning to lead again",
			zap.String("target", string(to)), zap.Duration("after", within))
	}
	select {
	case <-result:
	case <-ctx.Done():
		return ctx.Err()
	case <-done:
		return raft.ErrRaftShutdown
	}
	if leader, _ := s.Raft.LeaderWithID(); leader == addr {
		return nil
	}
	return ErrHandOverAbandoned
}
