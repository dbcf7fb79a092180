package assign

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

const scenarios = 500

// TestAssignProperties checks, for every assignor over random groups:
//   - the result is valid (checkValid: every subscribed partition exactly
//     once, only to a subscribed member, every member has an entry);
//   - the same input in another order gives the same output, and the
//     input is not modified;
//   - uniform and roundrobin are balanced (counts within one) when every
//     member has the same subscription;
//   - uniform is a fixed point on its own output (a settled group stays
//     settled), and with heterogeneous subscriptions no member owns a
//     partition of a topic another subscriber of which has two fewer.
func TestAssignProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(seed(t), 1))
	for n := range scenarios {
		s := randomScenario(r, n%2 == 0)
		for _, name := range Names() {
			a, _ := New(name)
			where := fmt.Sprintf("scenario %d, %s: %v", n, name, s)
			before := fmt.Sprint(s)
			got, err := a.Assign(s.members, s.topics, s.prev)
			if err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			if err := checkValid(s.members, s.topics, got); err != nil {
				t.Fatalf("%s: %v\ngot %v", where, err, got)
			}
			if after := fmt.Sprint(s); after != before {
				t.Fatalf("%s: input modified:\nbefore %s\nafter  %s", where, before, after)
			}
			again, _ := a.Assign(shuffled(r, s.members), s.topics, s.prev)
			if again.String() != got.String() {
				t.Fatalf("%s: order changed the result:\n%v\n%v", where, got, again)
			}
			homogeneous := sameSubscriptions(s.members, s.topics)
			if lo, hi := spread(s.members, got); homogeneous && name != Range && hi-lo > 1 {
				t.Fatalf("%s: unbalanced (%d..%d): %v", where, lo, hi, got)
			}
			if name != Uniform {
				continue
			}
			if fixed, _ := a.Assign(s.members, s.topics, got); fixed.String() != got.String() {
				t.Fatalf("%s: not a fixed point:\n%v\n%v", where, got, fixed)
			}
			if err := checkNoSingleMoveHelps(s.members, got); err != nil {
				t.Fatalf("%s: %v: %v", where, err, got)
			}
			if homogeneous {
				if moved, least := moves(s, got), minimumMoves(s); moved != least {
					t.Fatalf("%s: %d partitions moved, the minimum is %d: %v", where, moved, least, got)
				}
			}
		}
	}
}

// TestUniformJoinLeave checks stickiness when one member joins or leaves
// a settled group with one subscription: the exact minimum moves. On a
// join the newcomer takes P/N (rounded down) partitions and nothing else
// moves; on a leave every remaining member keeps all it had.
func TestUniformJoinLeave(t *testing.T) {
	r := rand.New(rand.NewPCG(seed(t), 2))
	u, _ := New(Uniform)
	for n := range scenarios {
		s := randomScenario(r, true)
		if len(s.members) < 2 {
			continue
		}
		settled, _ := u.Assign(s.members, s.topics, s.prev)
		total := 0
		for _, l := range settled {
			total += len(l)
		}
		k := r.IntN(len(s.members))
		joiner := Member{ID: "zz-new", Topics: s.members[k].Topics}

		joined := append(slices.Clone(s.members), joiner)
		after, _ := u.Assign(joined, s.topics, settled)
		if got, want := len(after[joiner.ID]), total/len(joined); got != want {
			t.Fatalf("scenario %d: the joiner got %d partitions, want %d: %v -> %v", n, got, want, settled, after)
		}
		for _, m := range s.members {
			for _, tp := range after[m.ID] {
				if !slices.Contains(settled[m.ID], tp) {
					t.Fatalf("scenario %d: %s gained %s on a join: %v -> %v", n, m.ID, tp, settled, after)
				}
			}
		}

		left := slices.Delete(slices.Clone(s.members), k, k+1)
		after, _ = u.Assign(left, s.topics, settled)
		for _, m := range left {
			for _, tp := range settled[m.ID] {
				if !slices.Contains(after[m.ID], tp) {
					t.Fatalf("scenario %d: %s lost %s when %s left: %v -> %v", n, m.ID, tp, s.members[k].ID, settled, after)
				}
			}
		}
	}
}

// TestUniformOptimalBalance compares the uniform assignor's balance with
// brute force on small groups with different subscriptions: its sum of
// squared counts, and so its largest count, is the least possible.
func TestUniformOptimalBalance(t *testing.T) {
	r := rand.New(rand.NewPCG(seed(t), 3))
	u, _ := New(Uniform)
	for n := range scenarios {
		s := scenario{topics: Topics{"a": int32(r.IntN(4)), "b": int32(r.IntN(4)), "c": int32(r.IntN(3))}}
		for i := range 1 + r.IntN(4) {
			s.members = append(s.members, Member{ID: fmt.Sprintf("m%d", i), Topics: subset(r, []string{"a", "b", "c"})})
		}
		s.prev = Assignment{} // a random previous assignment to undo
		for _, name := range sortedKeys(s.topics) {
			for p := range s.topics[name] {
				id := s.members[r.IntN(len(s.members))].ID
				s.prev[id] = append(s.prev[id], TopicPartition{name, p})
			}
		}
		got, err := u.Assign(s.members, s.topics, s.prev)
		if err != nil {
			t.Fatal(err)
		}
		if have, best := squares(s.members, got), bruteForceSquares(s.members, s.topics); have != best {
			t.Fatalf("scenario %d: %v\nsum of squares %d, the best is %d: %v", n, s, have, best, got)
		}
	}
}

func shuffled(r *rand.Rand, ms []Member) []Member {
	c := make([]Member, len(ms))
	for i, m := range ms {
		c[i] = m
		c[i].Topics = slices.Clone(m.Topics)
		r.Shuffle(len(c[i].Topics), func(a, b int) { c[i].Topics[a], c[i].Topics[b] = c[i].Topics[b], c[i].Topics[a] })
	}
	r.Shuffle(len(c), func(a, b int) { c[a], c[b] = c[b], c[a] })
	return c
}

// existing returns m's subscribed topics that have partitions.
func existing(m Member, topics Topics) map[string]bool {
	set := map[string]bool{}
	for _, t := range m.Topics {
		if topics[t] > 0 {
			set[t] = true
		}
	}
	return set
}

func sameSubscriptions(ms []Member, topics Topics) bool {
	for _, m := range ms {
		if fmt.Sprint(existing(m, topics)) != fmt.Sprint(existing(ms[0], topics)) {
			return false
		}
	}
	return true
}

// checkNoSingleMoveHelps: no member owns a partition of a topic that a
// member with two fewer partitions subscribes to.
func checkNoSingleMoveHelps(ms []Member, a Assignment) error {
	for _, m := range ms {
		for _, tp := range a[m.ID] {
			for _, o := range ms {
				if slices.Contains(o.Topics, tp.Topic) && len(a[o.ID]) <= len(a[m.ID])-2 {
					return fmt.Errorf("%s (%d) owns %s, which %s (%d) could take", m.ID, len(a[m.ID]), tp, o.ID, len(a[o.ID]))
				}
			}
		}
	}
	return nil
}

// retained returns the partitions of s.prev that may stay where they are:
// the member exists and subscribes, the partition exists; a partition
// listed twice stays with the first member by ID.
func retained(s scenario) map[TopicPartition]string {
	ms := slices.Clone(s.members)
	slices.SortFunc(ms, func(a, b Member) int { return cmpString(a.ID, b.ID) })
	keep := map[TopicPartition]string{}
	for _, m := range ms {
		subs := existing(m, s.topics)
		for _, tp := range s.prev[m.ID] {
			if _, taken := keep[tp]; !taken && subs[tp.Topic] && tp.Partition >= 0 && tp.Partition < s.topics[tp.Topic] {
				keep[tp] = m.ID
			}
		}
	}
	return keep
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// moves counts the retained partitions that changed member.
func moves(s scenario, got Assignment) int {
	now := owners(got)
	n := 0
	for tp, id := range retained(s) {
		if now[tp] != id {
			n++
		}
	}
	return n
}

// minimumMoves is the fewest retained partitions any balanced assignment
// of a homogeneous group must move: quotas of P/N+1 for P%N members and
// P/N for the others; a member keeps at most its quota, and the larger
// quotas best go to the members retaining the most.
func minimumMoves(s scenario) int {
	if len(s.members) == 0 {
		return 0
	}
	per := map[string]int{}
	for _, id := range retained(s) {
		per[id]++
	}
	var counts []int
	total := 0
	for t := range existing(s.members[0], s.topics) {
		total += int(s.topics[t])
	}
	for _, m := range s.members {
		counts = append(counts, per[m.ID])
	}
	slices.Sort(counts)
	slices.Reverse(counts)
	q, r := total/len(counts), total%len(counts)
	least := 0
	for k, c := range counts {
		quota := q
		if k < r {
			quota++
		}
		least += max(0, c-quota)
	}
	return least
}

func squares(ms []Member, a Assignment) int {
	sum := 0
	for _, m := range ms {
		sum += len(a[m.ID]) * len(a[m.ID])
	}
	return sum
}

// bruteForceSquares tries every assignment of the subscribed partitions
// to subscribers and returns the least sum of squared counts.
func bruteForceSquares(ms []Member, topics Topics) int {
	var subs [][]int // per partition: the members that may own it
	for _, name := range sortedKeys(topics) {
		var who []int
		for i, m := range ms {
			if slices.Contains(m.Topics, name) {
				who = append(who, i)
			}
		}
		for range topics[name] {
			if who != nil {
				subs = append(subs, who)
			}
		}
	}
	count := make([]int, len(ms))
	best := -1
	var try func(i int)
	try = func(i int) {
		if i == len(subs) {
			sum := 0
			for _, c := range count {
				sum += c * c
			}
			if best < 0 || sum < best {
				best = sum
			}
			return
		}
		for _, m := range subs[i] {
			count[m]++
			try(i + 1)
			count[m]--
		}
	}
	try(0)
	return best
}
