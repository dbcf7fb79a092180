package replication

import (
	"context"

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

// Rank reports whether gone leads the group as this node sees it, and if
// so this node's place among the voters that would succeed it: 0 for the
// first voter of the configuration other than gone. ok is false when this
// node is not a following voter of gone.
func (s Successor) Rank(gone raft.ServerAddress) (rank int, ok bool, err error) {
	if s.Raft.State() != raft.Follower {
		return 0, false, nil
	}
	if leader, _ := s.Raft.LeaderWithID(); leader != gone {
		return 0, false, nil
	}
	f := s.Raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return 0, false, err
	}
	for _, sv := range f.Configuration().Servers {
		if sv.Suffrage != raft.Voter || sv.Address == gone {
			continue
		}
		if sv.ID == s.Self {
			return rank, true, nil
		}
		rank++
	}
	return 0, false, nil
}

// CampaignIfLeaderless starts an election now (transport.Campaign: raft's
// TimeoutNow path, no pre-vote) if this node is still a follower whose
// leader is gone or unknown. It reports whether it campaigned.
func (s Successor) CampaignIfLeaderless(ctx context.Context, gone raft.ServerAddress) (bool, error) {
	c, ok := s.Transport.(interface{ Campaign(context.Context) error })
	if !ok || s.Raft.State() != raft.Follower {
		return false, nil
	}
	if leader, _ := s.Raft.LeaderWithID(); leader != gone && leader != "" {
		return false, nil
	}
	return true, c.Campaign(ctx)
}
