package broker

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"

	"github.com/stratalog/strata/pkg/replication"
)

// Failover: the broker, not each raft group, notices that a leader is gone.
//
// Raft's own timers run per group: every follower checks for its leader,
// every leader heartbeats each follower and checks its lease. With a
// thousand groups on a broker those wake-ups are most of its CPU at rest,
// so Strata sets them twenty times longer than --raft-heartbeat-timeout
// (raftTimerScale) and decides elections itself, per broker pair:
//
//	transport (per peer)             elector (one loop, every tick)
//	  every frame read ─► heard[peer]     for each group this broker follows:
//	  empty round every tick ─► peer        leader's broker gone (connection
//	  connection refused ─► onPeerDown        refused) or silent for a heartbeat
//	                                          timeout, or no leader known for
//	                                          raftTimerScale/5 timeouts + 2 ticks
//	                                          (and the metadata's last leader
//	                                          is not up)
//	                                          (at once for a group just created,
//	                                          or whose only voter is this one)
//	                                        ─► candidacy: rank among the voters
//	                                           that are up, if a majority is up
//	                                        ─► campaign when its turn comes
//
// A tick is a third of --raft-heartbeat-timeout, the pace of the
// transport's heartbeat rounds. The first successor campaigns at once, the
// next one tick later if there is still no leader, and so on
// (replication.Successor says when a campaign would be unsafe and refuses
// it). If a group still has no leader three heartbeat timeouts after its
// candidacy, it starts over. Raft's own timers stay as the fallback.
//
// What it costs: one map lookup per group per tick, plus, per peer, one
// small frame each way per tick.

// raftTimerScale and raftLeaseScale: raft's heartbeat and election
// timeouts, and its leader lease, in --raft-heartbeat-timeouts. Raft sends
// a group's heartbeats every tenth to fifth of its heartbeat timeout, so
// with a scale of 20 a follower hears its leader every two to four
// --raft-heartbeat-timeouts plus a round; the lease must hold a few of
// those. CommitTimeout, the idle AppendEntries that tells a follower the
// commit index, is raftTimerScale timeouts too. Measured at 1,000
// partitions RF 3 (docs/operations.md): idle CPU per broker 21% with
// raft's timers at the flag, 10-12% at a scale of 10, 7-8% at 20.
const (
	raftTimerScale = 20
	raftLeaseScale = 10
)

// tick is the elector's and the heartbeat rounds' pace.
func (b *Broker) tick() time.Duration { return b.cfg.RaftHeartbeatTimeout / 3 }

// elector is the state of runElector. Which peers are up, watched or
// gone, the transport knows (Mux.Alive).
type elector struct {
	kick chan struct{} // buffered: onPeerDown wakes the loop

	mu    sync.Mutex
	fresh map[string]time.Time // groups bootstrapped by this run, and when

	pending map[string]*pendingElection // owned by runElector
}

// pendingElection is a group whose leader is gone, silent or unknown.
type pendingElection struct {
	leader raft.ServerAddress // the gone leader, "" if unknown
	since  time.Time          // when this broker first saw it so
	cand   *replication.Candidacy
	tried  bool
}

func (e *elector) init() {
	e.kick = make(chan struct{}, 1)
	e.fresh = map[string]time.Time{}
	e.pending = map[string]*pendingElection{}
}

// onPeerDown runs when the raft transport found a peer broker's process
// gone (a connection to it failed and its raft port refuses connections):
// that peer's groups are replaced at once rather than after a heartbeat
// timeout of silence (the transport has marked it gone: Mux.Alive).
func (b *Broker) onPeerDown(context.Context, raft.ServerAddress) {
	select {
	case b.elect.kick <- struct{}{}:
	default:
	}
}

// bootstrapped records that this broker just bootstrapped group, a
// partition that never had a leader: its first voter need not wait to hear
// from a leader before it campaigns.
func (b *Broker) bootstrapped(group string) {
	b.elect.mu.Lock()
	b.elect.fresh[group] = time.Now()
	b.elect.mu.Unlock()
}

// isFresh reports whether group was bootstrapped by this broker within d.
func (b *Broker) isFresh(group string, now time.Time, d time.Duration) bool {
	b.elect.mu.Lock()
	defer b.elect.mu.Unlock()
	t, ok := b.elect.fresh[group]
	if ok && now.Sub(t) >= d {
		delete(b.elect.fresh, group)
		return false
	}
	return ok
}

// alive reports whether peer's broker was heard within a heartbeat
// timeout and has not been found gone since (transport.Mux.Alive).
func (b *Broker) alive(peer raft.ServerAddress, now time.Time) bool {
	return b.mux.Alive(peer, now, b.cfg.RaftHeartbeatTimeout)
}

// runElector starts elections for the groups whose leader is gone, silent
// or unknown, every tick and whenever a peer is found gone.
func (b *Broker) runElector(ctx context.Context) {
	t := time.NewTicker(b.tick())
	defer t.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-b.elect.kick:
		}
		b.electOnce(ctx, time.Now(), &wg)
	}
}

// electOnce looks at every group this broker follows once.
func (b *Broker) electOnce(ctx context.Context, now time.Time, wg *sync.WaitGroup) {
	unknownWait := b.raftCfg().HeartbeatTimeout/5 + 2*b.tick()
	// A voter not watched yet (the metadata quorum's, before the metadata
	// names any broker) is watched from now on, and counts as up until a
	// heartbeat timeout passes without a word from it.
	live := func(a raft.ServerAddress) bool {
		b.mux.Watch(a)
		return b.alive(a, now)
	}
	seen := make(map[string]bool, len(b.elect.pending))
	started := 0
	// lastLeader is the broker the metadata last named leader of a group,
	// if any.
	consider := func(name string, s replication.Successor, lastLeader func() raft.ServerAddress) {
		if s.Raft == nil || s.Raft.State() != raft.Follower {
			return
		}
		leader, _ := s.Raft.LeaderWithID()
		if leader != "" {
			b.mux.Watch(leader)
			if b.alive(leader, now) {
				return
			}
		}
		seen[name] = true
		if leader == "" {
			// Raft knows no leader: this replica has not heard from the
			// one elected last. If that was the target of its own
			// handover a moment ago, or else the broker the metadata
			// names leader, and the transport found it gone (its raft
			// port refuses connections), it is the gone leader: waiting
			// to hear from a leader would cost unknownWait, or a tick
			// more than the next successor.
			if h := s.HandedTo; h != nil && now.Sub(h.At) < unknownWait && b.mux.Gone(h.Addr) {
				leader = h.Addr
			} else if l := lastLeader(); l != "" && b.mux.Gone(l) {
				leader = l
			}
		}
		p := b.elect.pending[name]
		// A leader known gone stays the news when raft forgets it: a
		// vote request of a higher term (a first successor's, maybe lost)
		// clears raft's leader, and the next successor must still try.
		if p == nil || leader != "" && p.leader != leader {
			p = &pendingElection{leader: leader, since: now}
			b.elect.pending[name] = p
		}
		fresh := p.leader == "" && b.isFresh(name, now, unknownWait)
		// wasLeader: the metadata names this broker the group's leader,
		// yet raft knows no leader just after the replica opened: it
		// restarted (as every broker did, after a restart of the whole
		// cluster, when nobody leads). It
		// waits two ticks to hear from a leader elected meanwhile, then
		// campaigns first; the others wait for it while it is up.
		// Only right after the replica opened: a leader deposed later (a
		// pause, a lost majority) knows no leader while another broker's
		// election runs, and must not race it.
		wasLeader := p.leader == "" && !fresh && lastLeader() == b.mux.Addr() && now.Sub(s.Opened) < unknownWait
		if p.leader == "" && !fresh {
			wait := unknownWait
			if wasLeader {
				wait = 2 * b.tick()
			}
			if now.Sub(p.since) < wait && !soleVoter(s) {
				return // a restarted follower hears its leader within this
			}
			// A replica that restarted does not know its leader until
			// the leader's next heartbeat, which may take longer when
			// the leader had been failing to reach it. If the broker
			// the metadata last named leader is up, that is the wait,
			// not an election (which would depose it).
			if l := lastLeader(); l != "" && l != b.mux.Addr() && b.alive(l, now) {
				return
			}
		}
		if p.tried && now.Sub(p.cand.Since) > 3*b.cfg.RaftHeartbeatTimeout {
			p.cand, p.tried = nil, false // still no leader: start over
		}
		if p.cand == nil {
			c, ok, err := s.Candidacy(p.leader, now, live)
			if err != nil {
				b.log.Debug("no election: cannot read the group's configuration", zap.String("group", name), zap.Error(err))
			}
			if !ok {
				return
			}
			if wasLeader {
				c.Rank = 0
			}
			p.cand = &c
		}
		if fresh && p.cand.Rank > 0 && now.Sub(p.since) < unknownWait {
			// A new group: only its first voter campaigns at once. The
			// others open it a moment later and would split the vote.
			return
		}
		if p.tried || now.Before(p.cand.Since.Add(time.Duration(p.cand.Rank)*b.tick())) {
			return
		}
		p.tried = true
		started++
		c := *p.cand
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, b.cfg.RaftHeartbeatTimeout)
			defer cancel()
			ok, err := s.Campaign(cctx, c)
			if err != nil {
				b.log.Info("election not started", zap.String("group", name), zap.String("gone_leader", string(c.Gone)), zap.Error(err))
			}
			if ok {
				b.metrics.earlyElections.Inc()
			}
		}()
	}
	if b.meta != nil {
		// The metadata quorum's leader is not recorded anywhere else;
		// its idle AppendEntries come every metaCommitTimeout, so a
		// restarted voter hears it long before unknownWait.
		consider("metadata", b.meta.Successor(), func() raft.ServerAddress { return "" })
	}
	for _, p := range b.replicas.all() {
		if g := p.Group(); g != nil {
			consider(p.GroupName(), g.Successor(), func() raft.ServerAddress { return b.recordedLeader(p.Topic(), p.ID()) })
		}
	}
	for name := range b.elect.pending {
		if !seen[name] {
			delete(b.elect.pending, name)
		}
	}
	if started > 0 {
		b.log.Info("leaders gone, silent or unknown: starting elections", zap.Int("groups", started))
	}
}

// recordedLeader is the raft address of the broker the metadata last named
// leader of topic's partition p, or "".
func (b *Broker) recordedLeader(topic string, p int32) raft.ServerAddress {
	t, ok := b.meta.Topic(topic)
	if !ok || int(p) >= len(t.Assignments) || t.Assignments[p].Leader == 0 {
		return ""
	}
	br, ok := b.meta.Broker(t.Assignments[p].Leader)
	if !ok {
		return ""
	}
	return raft.ServerAddress(br.RaftAddr)
}

// soleVoter reports whether s is its group's only voter (a single-node
// cluster): nobody else could lead it, so it need not wait to hear from a
// leader after a restart.
func soleVoter(s replication.Successor) bool {
	f := s.Raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	n, self := 0, false
	for _, sv := range f.Configuration().Servers {
		if sv.Suffrage == raft.Voter {
			n++
			self = self || sv.ID == s.Self
		}
	}
	return n == 1 && self
}
