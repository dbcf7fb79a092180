package cluster

import (
	"reflect"
	"testing"
)

func members(states ...State) []Member {
	out := make([]Member, len(states))
	for i, s := range states {
		out[i] = Member{Meta: Meta{NodeID: NodeID(i + 1)}, State: s}
	}
	return out
}

func ids(ms []Member) []NodeID {
	var out []NodeID
	for _, m := range ms {
		out = append(out, m.NodeID)
	}
	return out
}

func TestBootstrapVoters(t *testing.T) {
	tests := []struct {
		name   string
		self   NodeID
		states []State
		n      int
		want   []NodeID
		ok     bool
	}{
		{"too few", 1, []State{Alive, Alive}, 3, nil, false},
		{"exactly", 2, []State{Alive, Alive, Alive}, 3, []NodeID{1, 2, 3}, true},
		{"lowest ids win", 1, []State{Alive, Alive, Alive, Alive}, 3, []NodeID{1, 2, 3}, true},
		{"outside the set waits", 4, []State{Alive, Alive, Alive, Alive}, 3, nil, false},
		{"dead ones do not count", 1, []State{Alive, Dead, Alive}, 3, nil, false},
		{"single node", 1, []State{Alive}, 1, []NodeID{1}, true},
		{"no expectation", 1, []State{Alive}, 0, nil, false},
	}
	for _, tt := range tests {
		got, ok := BootstrapVoters(tt.self, members(tt.states...), tt.n)
		if ok != tt.ok || !reflect.DeepEqual(ids(got), tt.want) {
			t.Errorf("%s: got %v %v, want %v %v", tt.name, ids(got), ok, tt.want, tt.ok)
		}
	}
}

func TestReconcile(t *testing.T) {
	type act struct {
		kind ActionKind
		id   NodeID
	}
	tests := []struct {
		name   string
		config []Server
		states []State
		want   []act
	}{
		{"stable", []Server{{1, true}, {2, true}, {3, true}}, []State{Alive, Alive, Alive}, nil},
		{"fourth joins as non-voter", []Server{{1, true}, {2, true}, {3, true}}, []State{Alive, Alive, Alive, Alive},
			[]act{{AddNonvoter, 4}}},
		{"second joins as voter", []Server{{1, true}}, []State{Alive, Alive}, []act{{AddVoter, 2}}},
		{"five alive: promote to five voters", []Server{{1, true}, {2, true}, {3, true}, {4, false}}, []State{Alive, Alive, Alive, Alive, Alive},
			[]act{{AddVoter, 4}, {AddVoter, 5}}},
		{"dead voter stays", []Server{{1, true}, {2, true}, {3, true}}, []State{Alive, Dead, Alive}, nil},
		{"left voter is removed, non-voter promoted", []Server{{1, true}, {2, true}, {3, true}, {4, false}}, []State{Alive, Left, Alive, Alive},
			[]act{{Remove, 2}, {AddVoter, 4}}},
		{"suspect is not added", []Server{{1, true}}, []State{Alive, Suspect}, nil},
	}
	for _, tt := range tests {
		var got []act
		for _, a := range Reconcile(tt.config, members(tt.states...)) {
			got = append(got, act{a.Kind, a.Member.NodeID})
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}
