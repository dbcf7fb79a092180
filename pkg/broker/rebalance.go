package broker

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/metadata"
	"github.com/stratalog/strata/pkg/partition"
	"github.com/stratalog/strata/pkg/replication"
)

// Preferred leaders: every rebalanceInterval, each leader hands its
// partitions back to their preferred replica (the first in the
// assignment), so leaders stay spread as placement intended after a
// failover.
//
// A hand-over stops the partition's writes while it runs (raft refuses
// Apply during a leadership transfer), so it is made only when it will be
// short, and abandoned when it is not:
//
//	for each partition this broker leads whose preferred replica is another:
//	  the preferred broker heard by the raft transport within a heartbeat
//	  timeout, and not found gone since?       (gossip lags a kill by ~6 s)
//	  its replica a voter, following this leader in this term, holding
//	  every entry this leader had committed?   (ReplicaStatus, one call
//	                                             per broker per pass)
//	  ─► replication.Group.HandOver, abandoned after a heartbeat timeout:
//	     this leader then campaigns and leads again, one election later
//
// Before these checks, a broker killed and not yet declared dead by gossip,
// or restarted and still catching up, was handed its partitions back and
// writes stopped until raft's transfer timed out (twenty heartbeat
// timeouts).

// rebalanceInterval is how often leaders check whether the preferred
// replica should lead instead.
const rebalanceInterval = 5 * time.Second

// runRebalance runs rebalanceOnce every rebalanceInterval until ctx ends.
func (b *Broker) runRebalance(ctx context.Context) {
	every(ctx, rebalanceInterval, func() { b.rebalanceOnce(ctx) })
}

// handBack is a partition this broker leads that its preferred replica
// should lead.
type handBack struct {
	part   *partition.Partition
	to     metadata.NodeID
	addr   raft.ServerAddress
	status replication.Status // the leader's, taken before asking the target
}

// rebalanceOnce is one pass of runRebalance.
func (b *Broker) rebalanceOnce(ctx context.Context) {
	now := time.Now()
	byTarget := map[metadata.NodeID][]handBack{}
	for _, p := range b.replicas.all() {
		if !p.IsLeader() {
			continue
		}
		tp, ok := b.meta.Topic(p.Topic())
		if !ok || int(p.ID()) >= len(tp.Assignments) || len(tp.Assignments[p.ID()].Replicas) == 0 {
			continue
		}
		pref := tp.Assignments[p.ID()].Replicas[0]
		addr := raftAddress(b.raftAddrOf(pref))
		if pref == b.cfg.NodeID || addr == "" || !b.heardRecently(addr, now) {
			continue
		}
		byTarget[pref] = append(byTarget[pref], handBack{part: p, to: pref, addr: addr, status: p.Group().Status()})
	}
	for to, hs := range byTarget {
		states := b.targetStates(ctx, to, hs)
		for _, h := range hs {
			if why := notReadyToLead(h.status, b.cfg.NodeID, states[h.part.GroupName()]); why != "" {
				b.log.Debug("preferred replica not ready to lead", zap.String("topic", h.part.Topic()),
					zap.Int32("partition", h.part.ID()), zap.Uint32("preferred", to), zap.String("why", why))
				continue
			}
			if !b.handBack(ctx, h) {
				return
			}
		}
	}
}

// handBack hands h's partition to its preferred replica; false when ctx
// ended.
func (b *Broker) handBack(ctx context.Context, h handBack) bool {
	members, err := groupMembers(h.part.Group())
	if err != nil || !isVoter(members, h.to) {
		return ctx.Err() == nil
	}
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, transferTimeout)
	err = h.part.Group().HandOver(cctx, metadata.ServerID(h.to), h.addr, b.cfg.RaftHeartbeatTimeout)
	cancel()
	// Info either way: an abandoned hand-over is retried next pass and
	// costs one election; nothing for an operator to do.
	b.log.Info("leadership handed back to the preferred replica", zap.String("topic", h.part.Topic()), zap.Int32("partition", h.part.ID()),
		zap.Uint32("to", h.to), zap.Duration("took", time.Since(start)), zap.Error(err))
	return ctx.Err() == nil
}

// heardRecently reports whether the raft transport read a frame from peer
// within a heartbeat timeout and has not found it gone since: evidence of
// a live process, unlike gossip, which calls a killed broker alive for
// several seconds.
func (b *Broker) heardRecently(peer raft.ServerAddress, now time.Time) bool {
	h := b.mux.Heard(peer)
	return !h.IsZero() && now.Sub(h) < b.cfg.RaftHeartbeatTimeout && b.alive(peer, now)
}

// targetStates asks broker to for its replicas of hs' groups; missing
// ones (no answer in time) are absent.
func (b *Broker) targetStates(ctx context.Context, to metadata.NodeID, hs []handBack) map[string]*v1.ReplicaState {
	groups := make([]string, len(hs))
	for i, h := range hs {
		groups[i] = h.part.GroupName()
	}
	ic, err := b.internalClient(to)
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	resp, err := ic.ReplicaStatus(ctx, &v1.ReplicaStatusRequest{Groups: groups})
	if err != nil {
		return nil
	}
	out := make(map[string]*v1.ReplicaState, len(resp.Replicas))
	for _, st := range resp.Replicas {
		out[st.Group] = st
	}
	return out
}

// notReadyToLead says why the replica in state should not be handed
// leadership by leader self with status st, or "" if it may: it must
// follow self in self's term and hold every entry self had committed
// (raft's transfer then sends it only what came since, in milliseconds).
func notReadyToLead(st replication.Status, self metadata.NodeID, state *v1.ReplicaState) string {
	switch {
	case state == nil:
		return "no answer from its broker"
	case state.Role != "follower":
		return "not a follower (" + state.Role + ")"
	case state.Term != st.Term || state.Leader != self:
		return fmt.Sprintf("follows broker %d in term %d, not this leader in term %d", state.Leader, state.Term, st.Term)
	case state.LastIndex < st.CommitIndex:
		return fmt.Sprintf("behind: has raft index %d, the leader had committed %d", state.LastIndex, st.CommitIndex)
	}
	return ""
}
