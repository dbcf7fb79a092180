package cluster

import "sort"

// The metadata quorum's shape. Every broker keeps the metadata locally, but
// only a few vote: three while the cluster has fewer than five live brokers,
// five from then on. More voters make every metadata write wait for more
// fsyncs and tolerate failures no better for a cluster this size.
const (
	smallQuorum = 3
	largeQuorum = 5
)

// MaxVoters is how many voters a cluster of alive brokers should have.
func MaxVoters(alive int) int {
	if alive >= largeQuorum {
		return largeQuorum
	}
	return smallQuorum
}

// BootstrapVoters decides whether self should bootstrap the metadata quorum
// with --bootstrap-expect n, and with which voters: the n alive members with
// the lowest node ids, once at least n are alive. Every broker started with
// the same expectation computes the same set from the same members, so they
// all bootstrap one configuration whatever order they started in. A broker
// outside that set does not bootstrap; it waits to be added.
func BootstrapVoters(self NodeID, members []Member, n int) ([]Member, bool) {
	if n < 1 {
		return nil, false
	}
	var alive []Member
	for _, m := range members {
		if m.State == Alive {
			alive = append(alive, m)
		}
	}
	if len(alive) < n {
		return nil, false
	}
	sort.Slice(alive, func(i, j int) bool { return alive[i].NodeID < alive[j].NodeID })
	voters := alive[:n]
	for _, m := range voters {
		if m.NodeID == self {
			return voters, true
		}
	}
	return nil, false
}

// Server is one member of the quorum's Raft configuration.
type Server struct {
	ID    NodeID
	Voter bool
}

// ActionKind is a change to the quorum's configuration.
type ActionKind int

// Changes the metadata leader makes to the quorum.
const (
	AddVoter    ActionKind = iota // add as a voter, or promote a non-voter
	AddNonvoter                   // add as a non-voter: gets the metadata, does not vote
	Remove                        // remove a broker that left gracefully
)

func (k ActionKind) String() string {
	return [...]string{"add-voter", "add-nonvoter", "remove"}[k]
}

// Action is one change, for one member.
type Action struct {
	Kind   ActionKind
	Member Member
}

// Reconcile compares the quorum's configuration with the members gossip
// sees and returns the changes the metadata leader should make, in order:
// every alive broker gets the metadata (as a voter while voters are below
// MaxVoters, else as a non-voter), non-voters are promoted while voters are
// short, and brokers that left gracefully are removed. Dead brokers stay:
// they may come back, and removing a voter that is only unreachable would
// shrink the quorum the wrong way.
func Reconcile(config []Server, members []Member) []Action {
	in := map[NodeID]Server{}
	voters := 0
	for _, s := range config {
		in[s.ID] = s
		if s.Voter {
			voters++
		}
	}
	alive := 0
	for _, m := range members {
		if m.State == Alive {
			alive++
		}
	}
	max := MaxVoters(alive)
	var out []Action
	for _, m := range members {
		s, ok := in[m.NodeID]
		switch {
		case m.State == Left && ok:
			out = append(out, Action{Remove, m})
			if s.Voter {
				voters--
			}
		case m.State != Alive:
		case !ok && voters < max:
			out = append(out, Action{AddVoter, m})
			voters++
		case !ok:
			out = append(out, Action{AddNonvoter, m})
		case !s.Voter && voters < max:
			out = append(out, Action{AddVoter, m})
			voters++
		}
	}
	return out
}
