package assign

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
)

// group is the assignors' view of their input, checked and put in a fixed
// order so that nothing downstream depends on the caller's order or on map
// iteration. Members are numbered by ascending ID and partitions by a
// global index: the partitions of the subscribed topics, in Compare order.
// Assignors work on an owner slice (partition index -> member number, -1
// for none) and turn it into an Assignment at the end.
type group struct {
	members     []Member // sorted by ID
	topics      []string // existing topics with partitions that someone subscribes to, sorted
	counts      []int32  // partitions per topic
	base        []int    // global index of each topic's partition 0
	total       int      // number of partitions
	topicIndex  map[string]int
	subscribed  [][]bool // [member][topic]
	subscribers [][]int  // [topic] -> member numbers, ascending
}

// prepare checks the input and builds the group. It copies what it keeps.
func prepare(members []Member, topics Topics) (*group, error) {
	for _, name := range sortedKeys(topics) {
		if topics[name] < 0 {
			return nil, fmt.Errorf("topic %q has %d partitions: %w", name, topics[name], ErrNegativePartitions)
		}
	}
	g := &group{members: slices.Clone(members), topicIndex: map[string]int{}}
	slices.SortFunc(g.members, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	used := map[string]bool{}
	for i, m := range g.members {
		if m.ID == "" {
			return nil, fmt.Errorf("member with instance ID %q: %w", m.InstanceID, ErrEmptyMemberID)
		}
		if i > 0 && g.members[i-1].ID == m.ID {
			return nil, fmt.Errorf("member %q: %w", m.ID, ErrDuplicateMember)
		}
		for _, t := range m.Topics {
			if topics[t] > 0 {
				used[t] = true
			}
		}
	}
	g.topics = sortedKeys(used)
	for t, name := range g.topics {
		g.topicIndex[name] = t
		g.base = append(g.base, g.total)
		g.counts = append(g.counts, topics[name])
		g.total += int(topics[name])
	}
	g.subscribed = make([][]bool, len(g.members))
	g.subscribers = make([][]int, len(g.topics))
	for m, mem := range g.members {
		g.subscribed[m] = make([]bool, len(g.topics))
		for _, name := range mem.Topics {
			if t, ok := g.topicIndex[name]; ok && !g.subscribed[m][t] {
				g.subscribed[m][t] = true
				g.subscribers[t] = append(g.subscribers[t], m) // m ascends: sorted
			}
		}
	}
	return g, nil
}

// index returns tp's global index, or false if tp is not a partition of a
// subscribed topic.
func (g *group) index(tp TopicPartition) (int, bool) {
	t, ok := g.topicIndex[tp.Topic]
	if !ok || tp.Partition < 0 || tp.Partition >= g.counts[t] {
		return 0, false
	}
	return g.base[t] + int(tp.Partition), true
}

// topicOf returns the topic number of global index i.
func (g *group) topicOf(i int) int {
	return sort.Search(len(g.base), func(t int) bool { return g.base[t] > i }) - 1
}

// unowned returns an owner slice with no partition owned.
func (g *group) unowned() []int {
	owner := make([]int, g.total)
	for i := range owner {
		owner[i] = -1
	}
	return owner
}

// result turns an owner slice into an Assignment. Walking the global index
// in order yields each member's list already sorted.
func (g *group) result(owner []int) Assignment {
	sizes := make([]int, len(g.members))
	for _, m := range owner {
		if m >= 0 {
			sizes[m]++
		}
	}
	a := make(Assignment, len(g.members))
	for m, mem := range g.members {
		a[mem.ID] = make([]TopicPartition, 0, sizes[m])
	}
	for t, name := range g.topics {
		for p := range g.counts[t] {
			m := owner[g.base[t]+int(p)]
			if m < 0 {
				panic(fmt.Sprintf("assign: partition %s left unassigned", TopicPartition{name, p}))
			}
			id := g.members[m].ID
			a[id] = append(a[id], TopicPartition{name, p})
		}
	}
	return a
}

// kafkaOrder returns the member numbers in the order Kafka's range and
// round-robin assignors use: static members first, by instance ID, then
// dynamic members by member ID. With no static members this is ID order.
// Ordering static members by instance ID keeps a restarted static member
// (new member ID, same instance ID) in its place, so it gets its
// partitions back.
func (g *group) kafkaOrder() []int {
	order := make([]int, len(g.members))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		ia, ib := g.members[a].InstanceID, g.members[b].InstanceID
		switch {
		case ia != "" && ib != "":
			return cmp.Compare(ia, ib) // ties keep ID order (stable sort)
		case ia != "":
			return -1
		case ib != "":
			return 1
		}
		return 0 // both dynamic: ID order
	})
	return order
}
