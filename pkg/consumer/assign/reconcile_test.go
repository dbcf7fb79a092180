package assign

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestReconcile(t *testing.T) {
	for _, tc := range []struct {
		name, target, owned, want string
	}{
		{"nothing", "", "", ""},
		{"first assignment: nobody owns anything", "a=[t-0 t-1] b=[t-2]", "", "a=[t-0 t-1] b=[t-2]"},
		{"settled", "a=[t-0] b=[t-1]", "a=[t-0] b=[t-1]", "a=[t-0] b=[t-1]"},
		{"a move: withheld from b while a owns it; a drops it by omission",
			"a=[t-0] b=[t-1]", "a=[t-0 t-1] b=[]", "a=[t-0] b=[]"},
		{"a move: released, now told to b", "a=[t-0] b=[t-1]", "a=[t-0] b=[]", "a=[t-0] b=[t-1]"},
		{"a swap: both withheld until released", "a=[t-1] b=[t-0]", "a=[t-0] b=[t-1]", "a=[] b=[]"},
		{"a member that left still owns: withheld, and it is told to drop all",
			"a=[t-0 t-1]", "a=[t-0] x=[t-1]", "a=[t-0] x=[]"},
		{"a new member with nothing owned yet", "a=[t-0] n=[t-1]", "a=[t-0 t-1]", "a=[t-0] n=[]"},
		{"owned by two (a broken premise): withheld from everyone",
			"a=[t-0] b=[t-1]", "a=[t-0] b=[t-0 t-1]", "a=[] b=[t-1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Reconcile(parse(tc.target), parse(tc.owned)).String(); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestReconcileSortsAndLeavesInputAlone(t *testing.T) {
	target := Assignment{"a": {{"t", 2}, {"s", 9}, {"t", 2}, {"t", 0}}}
	owned := map[string][]TopicPartition{"b": {{"t", 0}}} // a plain map is accepted
	got := Reconcile(target, owned)
	if got.String() != "a=[s-9 t-2] b=[]" {
		t.Errorf("got %s", got)
	}
	if fmt.Sprint(target["a"]) != "[t-2 s-9 t-2 t-0]" {
		t.Errorf("target modified: %v", target)
	}
}

// TestReconcileProperties checks, over random targets and random owned
// sets (each partition owned by at most one member, members that left
// included):
//   - tell[m] is exactly target[m] minus what other members own, so a
//     member keeps every partition of its target that it owns;
//   - the invariant: the sets owned[m] ∪ tell[m] are pairwise disjoint;
//   - whatever order members act in, acquiring before releasing, no
//     partition is ever owned by two members, and the group reaches the
//     target in two rounds.
func TestReconcileProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(seed(t), 4))
	for n := range scenarios {
		s := randomScenario(r, n%2 == 0)
		a, _ := New(Names()[r.IntN(3)])
		target, err := a.Assign(s.members, s.topics, s.prev)
		if err != nil {
			t.Fatal(err)
		}
		owned := randomOwned(r, target)
		where := fmt.Sprintf("scenario %d: target %v owned %v", n, target, owned)
		for round := 0; ; round++ {
			tell := Reconcile(target, owned)
			holder := owners(owned)
			for _, id := range sortedKeys(tell) {
				var want []TopicPartition
				for _, tp := range target[id] {
					if o, ok := holder[tp]; !ok || o == id {
						want = append(want, tp)
					}
				}
				if fmt.Sprint(tell[id]) != fmt.Sprint(want) {
					t.Fatalf("%s: round %d: told %s %v, want %v", where, round, id, tell[id], want)
				}
			}
			union := Assignment{}
			for _, id := range sortedKeys(tell) {
				union[id] = append(slices.Clone(owned[id]), tell[id]...)
			}
			if err := checkDisjoint(union); err != nil {
				t.Fatalf("%s: round %d: owned ∪ told: %v", where, round, err)
			}
			if round == 2 {
				if Assignment(owned).String() != target.String() {
					t.Fatalf("%s: not settled after two rounds: %v", where, owned)
				}
				break
			}
			// Members act one at a time, in random order: acquire what they
			// were told, check, then release the rest, check.
			ids := sortedKeys(tell)
			r.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
			for _, id := range ids {
				owned[id] = append(owned[id], tell[id]...)
				if err := checkDisjoint(owned); err != nil {
					t.Fatalf("%s: round %d, %s acquired: %v", where, round, id, err)
				}
				owned[id] = slices.Clone(tell[id])
			}
			for id := range owned {
				if _, ok := target[id]; !ok {
					delete(owned, id) // it left: gone once it released everything
				}
			}
		}
	}
}

// randomOwned gives some partitions of target to random members, some of
// which left, with no partition owned twice.
func randomOwned(r *rand.Rand, target Assignment) Assignment {
	ids := append(sortedKeys(target), "left-1", "left-2")
	owned := Assignment{}
	for _, id := range sortedKeys(target) {
		for _, tp := range target[id] {
			if r.IntN(3) > 0 {
				o := ids[r.IntN(len(ids))]
				owned[o] = append(owned[o], tp)
			}
		}
	}
	for _, id := range sortedKeys(owned) {
		slices.SortFunc(owned[id], Compare)
	}
	return owned
}

// checkDisjoint reports a partition listed for two members.
func checkDisjoint(a Assignment) error {
	seen := map[TopicPartition]string{}
	for _, id := range sortedKeys(a) {
		for _, tp := range a[id] {
			if o, ok := seen[tp]; ok && o != id {
				return fmt.Errorf("%s owned by %s and %s", tp, o, id)
			}
			seen[tp] = id
		}
	}
	return nil
}
