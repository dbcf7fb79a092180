package broker

import (
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/replication"
)

// The rebalancer hands a partition back only to a replica that follows
// this leader in its term and holds everything it had committed.
func TestNotReadyToLead(t *testing.T) {
	leader := replication.Status{Term: 7, State: raft.Leader, CommitIndex: 1000, LastIndex: 1004}
	with := func(f func(*v1.ReplicaState)) *v1.ReplicaState {
		s := &v1.ReplicaState{Role: "follower", Term: 7, Leader: 1, LastIndex: 1000}
		f(s)
		return s
	}
	ok := with(func(*v1.ReplicaState) {})
	for _, tc := range []struct {
		name  string
		state *v1.ReplicaState
		want  string // "" ready, else a word of the reason
	}{
		{"caught up to the commit index", ok, ""},
		{"ahead of the commit index", with(func(s *v1.ReplicaState) { s.LastIndex = 1004 }), ""},
		{"no answer (down, or restarting)", nil, "no answer"},
		{"behind, catching up after a restart", with(func(s *v1.ReplicaState) { s.LastIndex = 400 }), "behind"},
		{"a candidate", with(func(s *v1.ReplicaState) { s.Role = "candidate" }), "candidate"},
		{"in an older term", with(func(s *v1.ReplicaState) { s.Term = 6 }), "term"},
		{"following another leader", with(func(s *v1.ReplicaState) { s.Leader = 3 }), "follows broker 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := notReadyToLead(leader, 1, tc.state)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Fatalf("notReadyToLead = %q, want %q", got, tc.want)
			}
		})
	}
}
