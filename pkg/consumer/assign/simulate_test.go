package assign

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSimulateRebalances drives a group of up to 10 members over 100
// partitions through members joining and leaving one at a time, with the
// uniform assignor and Reconcile rounds as a coordinator would run them:
//   - after each change the coordinator computes the target (prev = the
//     last target);
//   - a member has one heartbeat in flight: it reports what it owns and
//     gets Reconcile(target, mayOwn)[member], where mayOwn is each
//     member's last report plus the response sent since (caller's duty 4);
//     in a later round it acts on the response (each round it does with
//     probability 0.7: members are slow, and act on responses computed
//     from an older state): it acquires what it was told, then releases
//     the rest; then it heartbeats again;
//   - a member that leaves either releases everything at once or dies
//     holding its partitions until its session expires, 3 rounds later;
//   - rounds run until every member owns its target, except that one
//     change in three comes after 1 to 3 rounds, mid-rebalance, while
//     responses computed for the previous target are still in flight.
//
// Asserted at every step: no partition is owned by two members; a member
// the change does not concern (its new target, and the response it may
// still have to act on, hold all it owns) never loses a partition; no
// member ever releases a partition of its target (nobody stops consuming
// what it keeps). Asserted once settled: after a
// leave from a settled group, every remaining member kept all it had;
// counts are within one.
func TestSimulateRebalances(t *testing.T) {
	r := rand.New(rand.NewPCG(seed(t), 5))
	topics := Topics{"orders": 64, "events": 36}
	u, _ := New(Uniform)
	sim := &simulation{t: t, owned: Assignment{}, mayOwn: Assignment{}, dead: map[string]int{}, pending: map[string]response{}}
	var live []Member
	next := 0
	for change := range 100 {
		join := len(live) < 10 && (change < 10 || r.IntN(2) == 0 || len(live) < 2)
		var what string
		before := Assignment{} // what the others owned, when the group had settled
		wasSettled := sim.settled()
		if join {
			live = append(live, Member{ID: fmt.Sprintf("m%02d", next), Topics: []string{"orders", "events"}})
			what = "join " + live[len(live)-1].ID
			next++
		} else {
			k := r.IntN(len(live))
			gone := live[k].ID
			what = "leave " + gone
			live = slices.Delete(live, k, k+1)
			delete(sim.pending, gone)
			if r.IntN(2) == 0 {
				sim.dead[gone] = 3 // dies holding its partitions
			} else {
				delete(sim.owned, gone) // leaves cleanly: released everything
				delete(sim.mayOwn, gone)
			}
			for _, m := range live {
				if wasSettled {
					before[m.ID] = slices.Clone(sim.owned[m.ID])
				}
			}
		}
		target, err := u.Assign(live, topics, sim.target)
		if err != nil {
			t.Fatal(err)
		}
		sim.target = target
		sim.unaffected = map[string][]TopicPartition{}
		for _, m := range live {
			resp, inFlight := sim.pending[m.ID]
			keeps := func(l []TopicPartition) bool {
				return !slices.ContainsFunc(sim.owned[m.ID], func(tp TopicPartition) bool { return !slices.Contains(l, tp) })
			}
			if keeps(target[m.ID]) && (!inFlight || keeps(resp.tell)) {
				sim.unaffected[m.ID] = slices.Clone(sim.owned[m.ID])
			}
		}
		sim.where = fmt.Sprintf("change %d (%s)", change, what)
		limit := 0 // settle
		if r.IntN(3) == 0 {
			limit = 1 + r.IntN(3) // the next change comes mid-rebalance
		}
		settled := sim.settle(r, limit)
		if !settled {
			continue
		}
		for id, had := range before {
			for _, tp := range had {
				if !slices.Contains(sim.owned[id], tp) {
					t.Fatalf("%s: %s lost %s though only another member left", sim.where, id, tp)
				}
			}
		}
		if lo, hi := spread(live, sim.owned); hi-lo > 1 {
			t.Fatalf("%s: settled unbalanced (%d..%d): %v", sim.where, lo, hi, sim.owned)
		}
	}
}

type simulation struct {
	t      *testing.T
	where  string
	target Assignment
	owned  Assignment     // what each member really owns
	mayOwn Assignment     // what the coordinator must assume each member owns
	dead   map[string]int // dead members -> rounds until their session expires
	// responses members received and have not acted on yet
	pending map[string]response
	// unaffected members (their target keeps all they own) and what they
	// owned when the change began.
	unaffected map[string][]TopicPartition
}

// settle runs rounds until the group settles or, if limit > 0, for limit
// rounds at most. It reports whether the group settled.
func (s *simulation) settle(r *rand.Rand, limit int) bool {
	for round := 0; ; round++ {
		if round == limit && limit > 0 {
			return false
		}
		if round == 200 {
			s.t.Fatalf("%s: not settled after 200 rounds: owned %v target %v", s.where, s.owned, s.target)
		}
		if s.settled() {
			return true
		}
		ids := sortedKeys(s.target)
		r.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		for _, id := range ids {
			if resp, ok := s.pending[id]; ok {
				if r.IntN(10) < 3 {
					continue // slow: has not acted on its response yet
				}
				s.owned[id] = union(s.owned[id], resp.tell)
				s.check(round, id+" acquired")
				for _, tp := range s.owned[id] {
					if !slices.Contains(resp.tell, tp) && slices.Contains(resp.target, tp) {
						s.t.Fatalf("%s: round %d: %s told to release %s of its own target", s.where, round, id, tp)
					}
				}
				s.owned[id] = slices.Clone(resp.tell)
				s.check(round, id+" released")
				delete(s.pending, id)
				continue
			}
			// A heartbeat: the member reports what it owns; the response
			// is computed from the reports and the responses in flight.
			s.mayOwn[id] = slices.Clone(s.owned[id])
			tell := Reconcile(s.target, s.mayOwn)[id]
			s.mayOwn[id] = union(s.mayOwn[id], tell)
			s.pending[id] = response{tell, slices.Clone(s.target[id])}
		}
		for _, id := range sortedKeys(s.dead) {
			if s.dead[id]--; s.dead[id] == 0 {
				delete(s.dead, id) // session expired
				delete(s.owned, id)
				delete(s.mayOwn, id)
			}
		}
	}
}

// response is a heartbeat response a member has not acted on yet, with
// the member's target when it was computed.
type response struct{ tell, target []TopicPartition }

func (s *simulation) settled() bool {
	if len(s.dead) > 0 || len(s.owned) != len(s.target) {
		return false
	}
	for _, id := range sortedKeys(s.target) {
		if resp, ok := s.pending[id]; ok && fmt.Sprint(resp.tell) != fmt.Sprint(s.target[id]) {
			return false
		}
		if fmt.Sprint(s.owned[id]) != fmt.Sprint(s.target[id]) || fmt.Sprint(s.mayOwn[id]) != fmt.Sprint(s.target[id]) {
			return false
		}
	}
	return true
}

func (s *simulation) check(round int, step string) {
	if err := checkDisjoint(s.owned); err != nil {
		s.t.Fatalf("%s: round %d, after %s: %v", s.where, round, step, err)
	}
	for _, id := range sortedKeys(s.unaffected) {
		for _, tp := range s.unaffected[id] {
			if !slices.Contains(s.owned[id], tp) {
				s.t.Fatalf("%s: round %d, after %s: %s, unaffected by the change, lost %s", s.where, round, step, id, tp)
			}
		}
	}
}

// union returns the sorted union of two lists.
func union(a, b []TopicPartition) []TopicPartition {
	u := append(slices.Clone(a), b...)
	slices.SortFunc(u, Compare)
	return slices.Compact(u)
}
