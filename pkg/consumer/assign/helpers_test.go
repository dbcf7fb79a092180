package assign

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

var seedFlag = flag.Uint64("assign.seed", 0, "seed of the random tests (0 = a fixed default)")

// seed returns the random tests' seed and logs it, so a failure can be
// replayed with -args -assign.seed=N.
func seed(t testing.TB) uint64 {
	s := *seedFlag
	if s == 0 {
		s = 20260601
	}
	t.Logf("seed %d (rerun with -args -assign.seed=%d)", s, s)
	return s
}

// checkValid checks the rules every assignor promises: every member has
// an entry, lists are sorted, every partition of a subscribed topic is
// assigned exactly once, only to a member subscribed to its topic, and
// nothing else is assigned.
func checkValid(ms []Member, topics Topics, a Assignment) error {
	subs := map[string]map[string]bool{}
	wanted := map[TopicPartition]bool{}
	for _, m := range ms {
		subs[m.ID] = map[string]bool{}
		for _, t := range m.Topics {
			subs[m.ID][t] = true
			for p := range topics[t] {
				wanted[TopicPartition{t, p}] = true
			}
		}
		if _, ok := a[m.ID]; !ok {
			return fmt.Errorf("member %s has no entry", m.ID)
		}
	}
	if len(a) != len(ms) {
		return fmt.Errorf("%d entries for %d members", len(a), len(ms))
	}
	seen := map[TopicPartition]string{}
	for _, id := range sortedKeys(a) {
		if !slices.IsSortedFunc(a[id], Compare) {
			return fmt.Errorf("member %s: list not sorted: %v", id, a[id])
		}
		for _, tp := range a[id] {
			if o, ok := seen[tp]; ok {
				return fmt.Errorf("%s assigned to %s and %s", tp, o, id)
			}
			seen[tp] = id
			if !wanted[tp] {
				return fmt.Errorf("%s assigned to %s but is not a subscribed partition", tp, id)
			}
			if !subs[id][tp.Topic] {
				return fmt.Errorf("%s assigned to %s, which does not subscribe to %s", tp, id, tp.Topic)
			}
		}
	}
	if len(seen) != len(wanted) {
		for _, tp := range sortedTPs(wanted) {
			if _, ok := seen[tp]; !ok {
				return fmt.Errorf("%s not assigned", tp)
			}
		}
	}
	return nil
}

func sortedTPs(set map[TopicPartition]bool) []TopicPartition {
	var l []TopicPartition
	for tp := range set {
		l = append(l, tp)
	}
	slices.SortFunc(l, Compare)
	return l
}

// owners inverts an assignment.
func owners(a Assignment) map[TopicPartition]string {
	o := map[TopicPartition]string{}
	for id, l := range a {
		for _, tp := range l {
			o[tp] = id
		}
	}
	return o
}

// spread returns the smallest and largest list length over members.
func spread(ms []Member, a Assignment) (lo, hi int) {
	for i, m := range ms {
		n := len(a[m.ID])
		if i == 0 || n < lo {
			lo = n
		}
		if n > hi {
			hi = n
		}
	}
	return lo, hi
}

// scenario is a random group.
type scenario struct {
	members []Member
	topics  Topics
	prev    Assignment
}

func (s scenario) String() string {
	return fmt.Sprintf("members %v topics %v prev %v", s.members, s.topics, s.prev)
}

// randomScenario makes a group of up to 12 members over up to 5 topics of
// up to 20 partitions; homogeneous decides whether all members share one
// subscription. prev is nil, garbage, or a previous assignment of a
// perturbed group (members joined or left, partitions added).
func randomScenario(r *rand.Rand, homogeneous bool) scenario {
	s := scenario{topics: Topics{}}
	var names []string
	for t := range r.IntN(6) {
		name := fmt.Sprintf("t%d", t)
		names = append(names, name)
		s.topics[name] = int32(r.IntN(21))
	}
	common := subset(r, names)
	n := r.IntN(13)
	for i := range n {
		m := Member{ID: fmt.Sprintf("m%02d", r.IntN(100)*100+i)} // random order, unique
		if r.IntN(4) == 0 {
			m.InstanceID = fmt.Sprintf("i%d", r.IntN(1000))
		}
		if homogeneous {
			m.Topics = slices.Clone(common)
			r.Shuffle(len(m.Topics), func(a, b int) { m.Topics[a], m.Topics[b] = m.Topics[b], m.Topics[a] })
		} else {
			m.Topics = subset(r, append(names, "missing"))
		}
		s.members = append(s.members, m)
	}
	switch r.IntN(3) {
	case 1: // garbage: random partitions, some invalid, some twice
		s.prev = Assignment{}
		for range r.IntN(40) {
			id := fmt.Sprintf("m%02d", r.IntN(100)*100+r.IntN(n+2))
			topic := fmt.Sprintf("t%d", r.IntN(7))
			s.prev[id] = append(s.prev[id], TopicPartition{topic, int32(r.IntN(25)) - 1})
		}
	case 2: // a previous assignment of a perturbed group
		old := scenario{topics: Topics{}}
		for name, c := range s.topics {
			old.topics[name] = int32(r.IntN(int(c) + 1))
		}
		for _, m := range s.members {
			if r.IntN(4) != 0 {
				old.members = append(old.members, m)
			}
		}
		for i := range r.IntN(3) {
			old.members = append(old.members, Member{ID: fmt.Sprintf("gone%d", i), Topics: common})
		}
		a, _ := New(Names()[r.IntN(3)])
		s.prev, _ = a.Assign(old.members, old.topics, nil)
	}
	return s
}

func subset(r *rand.Rand, names []string) []string {
	var l []string
	for _, n := range names {
		if r.IntN(2) == 0 {
			l = append(l, n)
		}
	}
	return l
}
