package replication

import (
	"context"
	"time"

	"github.com/hashicorp/raft"
)

// Elections driven by the broker. The broker learns that a leader's broker
// is gone (transport.Options.OnPeerDown) or silent (transport.Mux.Heard)
// sooner than raft's own timers would, which it sets twenty heartbeat
// timeouts long so that groups at rest cost little (broker/elector.go). For
// each group whose leader is gone, silent or unknown for too long, the
// surviving voters campaign in turn, in the order of the group's
// configuration: the first at once, the next if there is still no leader a
// moment later (its log may be ahead of the first's, which then cannot
// win), and so on. One at a time, so they do not split their votes.
//
// A campaign goes through raft's TimeoutNow path, which makes even a
// leader a candidate and lets voters ignore the leader they follow, so it
// must not reach a group that has moved on: each candidacy records the
// time of the news, and a replica campaigns only while it is a follower
// whose leader is the gone one or unknown and it has heard from no leader
// or candidate since (raft refreshes its last contact on every
// AppendEntries, heartbeat and granted vote). A leader that is in fact
// alive therefore keeps its group: its next heartbeat stops the campaign.
// The term may have moved, by an earlier successor's lost election: that
// is when the next one must try.
//
// A replica campaigns only if it sees a majority of the group's voters up
// (itself included), so a broker cut off from the others does not raise
// its groups' terms in vain: raft's pre-vote does that for raft's own
// elections, and TimeoutNow skips it.

// Successor is one raft node as a candidate to succeed a leader that is
// gone: a partition replica (Group.Successor) or the metadata replica.
type Successor struct {
	Raft      *raft.Raft
	Self      raft.ServerID
	Transport raft.Transport // must have Campaign (transport.Transport)
	// Abstaining, when set and true, keeps the node out of elections: its
	// log lost acknowledged entries (abstain.go), or it cannot write it
	// (storefail.go).
	Abstaining func() bool
	// HandedTo is the target of this replica's last completed handover,
	// nil if none (HandedTo).
	HandedTo *HandedTo
	// Opened is when this replica's group was opened (by this process).
	Opened time.Time
}

// Successor returns the replica as a candidate for early elections.
func (g *Group) Successor() Successor {
	return Successor{Raft: g.raft, Self: g.cfg.NodeID, Transport: g.cfg.Transport, Abstaining: g.store.storeAbstains, HandedTo: g.handedTo.Load(), Opened: g.opened}
}

// Candidacy is a node's turn to succeed a gone leader.
type Candidacy struct {
	Rank  int       // 0: first live voter other than the gone leader, in configuration order
	Since time.Time // when the news came
	Gone  raft.ServerAddress
}

// Candidacy reports whether this node, a follower whose leader is gone (or
// unknown: gone is "") and that knows no other leader, should campaign at
// time now, and its turn among the
// voters that would. live tells whether another voter's broker is up;
// voters that are not up take no turn. ok is false when this node is not a
// following voter of gone, or when it sees no majority of the group's
// voters up.
func (s Successor) Candidacy(gone raft.ServerAddress, now time.Time, live func(raft.ServerAddress) bool) (c Candidacy, ok bool, err error) {
	if s.Raft.State() != raft.Follower || (s.Abstaining != nil && s.Abstaining()) {
		return c, false, nil
	}
	if leader, _ := s.Raft.LeaderWithID(); leader != gone && leader != "" {
		return c, false, nil // it follows another, live leader
	}
	f := s.Raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return c, false, err
	}
	voters, up, rank, self := 0, 0, 0, false
	for _, sv := range f.Configuration().Servers {
		if sv.Suffrage != raft.Voter {
			continue
		}
		voters++
		switch {
		case sv.ID == s.Self:
			self = true
			up++
		case sv.Address == gone || !live(sv.Address):
		default:
			up++
			if !self {
				rank++
			}
		}
	}
	if !self || 2*up <= voters {
		return c, false, nil
	}
	return Candidacy{Rank: rank, Since: now, Gone: gone}, true, nil
}

// Campaign starts an election now (transport.Campaign: raft's TimeoutNow
// path, no pre-vote) if the candidacy still stands: this node is a
// follower, its leader is the gone one or unknown, and it has heard from
// no leader or candidate since the news. It reports whether it
// campaigned.
func (s Successor) Campaign(ctx context.Context, c Candidacy) (bool, error) {
	t, ok := s.Transport.(interface{ Campaign(context.Context) error })
	if !ok || s.Raft.State() != raft.Follower || s.Raft.LastContact().After(c.Since) {
		return false, nil
	}
	if leader, _ := s.Raft.LeaderWithID(); leader != c.Gone && leader != "" {
		return false, nil
	}
	if err := t.Campaign(ctx); err != nil {
		return false, err
	}
	return true, nil
}

// StopHeartbeats releases the heartbeats tr holds for its next round
// (transport.Transport.StopHeartbeats), so that raft.Shutdown, which waits
// for its heartbeat goroutines, need not wait for a round. Call it just
// before raft.Shutdown.
func StopHeartbeats(tr raft.Transport) {
	if s, ok := tr.(interface{ StopHeartbeats() }); ok {
		s.StopHeartbeats()
	}
}
