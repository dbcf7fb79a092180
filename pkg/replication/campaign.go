package replication

import (
	"context"
	"time"

	"github.com/hashicorp/raft"
)

// Early elections after a leader's broker is gone. The broker learns that
// a peer's process exited (transport.Options.OnPeerDown) long before
// raft's heartbeat timeout would: raft elects one to three timeouts after
// the last heartbeat. For each group that peer led, the surviving voters
// campaign in turn, in the order of the group's configuration: the first
// at once, the next if there is still no leader a moment later (its log
// may be ahead of the first's, which then cannot win), and so on. One at a
// time, so they do not split their votes.
//
// A campaign goes through raft's TimeoutNow path, which makes even a
// leader a candidate and lets voters ignore the leader they follow, so it
// must not reach a group that has moved on: each candidacy records the
// term and the time of the news, and a replica campaigns only if its term
// is unchanged and it has heard from no leader or candidate since (raft
// refreshes its last contact on every AppendEntries, heartbeat and granted
// vote). A leader that is in fact alive therefore keeps its group: its
// next heartbeat round stops the campaign.

// Successor is one raft node as a candidate to succeed a leader that is
// gone: a partition replica (Group.Successor) or the metadata replica.
type Successor struct {
	Raft      *raft.Raft
	Self      raft.ServerID
	Transport raft.Transport // must have Campaign (transport.Transport)
}

// Successor returns the replica as a candidate for early elections.
func (g *Group) Successor() Successor {
	return Successor{Raft: g.raft, Self: g.cfg.NodeID, Transport: g.cfg.Transport}
}

// Candidacy is a node's turn to succeed a gone leader.
type Candidacy struct {
	Rank  int       // 0: first voter after the gone leader in the configuration
	Term  uint64    // the term when the news came
	Since time.Time // when the news came
	Gone  raft.ServerAddress
}

// Candidacy reports whether gone leads the group as this node sees it at
// time now, and if so this node's turn among the voters that would
// succeed it. ok is false when this node is not a following voter of gone.
func (s Successor) Candidacy(gone raft.ServerAddress, now time.Time) (c Candidacy, ok bool, err error) {
	if s.Raft.State() != raft.Follower {
		return c, false, nil
	}
	term := s.Raft.CurrentTerm()
	if leader, _ := s.Raft.LeaderWithID(); leader != gone {
		return c, false, nil
	}
	f := s.Raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return c, false, err
	}
	rank := 0
	for _, sv := range f.Configuration().Servers {
		if sv.Suffrage != raft.Voter || sv.Address == gone {
			continue
		}
		if sv.ID == s.Self {
			return Candidacy{Rank: rank, Term: term, Since: now, Gone: gone}, true, nil
		}
		rank++
	}
	return c, false, nil
}

// Campaign starts an election now (transport.Campaign: raft's TimeoutNow
// path, no pre-vote) if the candidacy still stands: this node is a
// follower in the same term, its leader is the gone one or unknown, and it
// has heard from no leader or candidate since the news. It reports
// whether it campaigned.
func (s Successor) Campaign(ctx context.Context, c Candidacy) (bool, error) {
	t, ok := s.Transport.(interface{ Campaign(context.Context) error })
	if !ok || s.Raft.State() != raft.Follower || s.Raft.CurrentTerm() != c.Term || s.Raft.LastContact().After(c.Since) {
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
