package assign

import (
	"cmp"
	"slices"
)

// uniformAssignor is the default assignor: sticky and balanced, the
// server-side "uniform" assignor of KIP-848. Given the previous target it
// moves as few partitions as balance allows, so a rebalance only touches
// the members that must give or take partitions.
//
// Both paths start the same way: each member retains the partitions of its
// previous target that still exist and that it still subscribes to (a
// partition listed for two members goes to the first by ID). Everything
// else (partitions of members that left, of dropped subscriptions, new
// partitions) is unowned.
//
// Homogeneous groups (every member subscribes to the same existing
// topics) take the exact path. With P partitions and N members, r = P%N
// members may own q+1 = P/N+1 and the others q. The r members retaining
// the most get the larger quota (ties by ID); a member over its quota
// gives up its highest partitions; the freed and unowned partitions, in
// order, are dealt round-robin to the members under quota (in ID order).
// This moves the minimum number of partitions any balanced assignment
// could: a member keeps min(retained, quota), and giving the larger quotas
// to the largest retainers maximizes the sum of that (an exchange
// argument). New members therefore take from the most loaded, and the
// partitions of a member that leaves go to the least loaded. Rejected: one
// greedy algorithm for both cases; it balances, but its move count is
// harder to bound, and this path is the common one.
//
// Heterogeneous groups take another path, because there balance is a
// flow problem and the counts of members with different subscriptions
// cannot always be within one (a member alone on a topic of 50 partitions
// owns 50):
//  1. Unowned partitions go, most constrained first (topics with the
//     fewest subscribers first, then in order), each to its topic's least
//     loaded subscriber (ties by ID).
//  2. Then, repeatedly (augment), the most loaded member that can pass a
//     partition, along a chain of reassignments each to a subscriber of
//     the partition's topic, to a member with two or more partitions
//     fewer, does so, to the least loaded such member by the shortest
//     chain. Every such move lowers the sum of squared counts, so this
//     ends.
//
// When no such chain is left, no reassignment can lower the sum of
// squared counts: that is the optimality condition of this convex
// assignment problem (an optimal "semi-matching", Harvey et al. 2006),
// whose optimum also has the smallest possible maximum count. So the
// result is as balanced as the subscriptions allow, and in particular
// members with the same subscription are within one of each other. The
// test checks optimality by brute force on small groups. What is not
// guaranteed on this path is the minimum number of moves: the first step
// keeps every retained partition and a chain moves one partition per link
// (the shortest chain is taken); we accept that for the rarer case.
// Rejected: moving only single partitions from a member to one two
// below; it is simpler but stops short (see augment).
//
// Assign(members, topics, Assign(members, topics, prev)) returns its
// prev argument unchanged: a settled group stays settled.
type uniformAssignor struct{}

func (uniformAssignor) Name() string { return Uniform }

func (uniformAssignor) Assign(members []Member, topics Topics, prev Assignment) (Assignment, error) {
	g, err := prepare(members, topics)
	if err != nil {
		return nil, err
	}
	if len(g.members) == 0 {
		return Assignment{}, nil
	}
	owner, owned := g.retain(prev)
	if g.homogeneous() {
		g.balanceQuotas(owner, owned)
	} else {
		g.balanceFlow(owner)
	}
	return g.result(owner), nil
}

// retain returns the owner slice after every member keeps the still valid
// partitions of its previous target, and each member's retained
// partitions, ascending.
func (g *group) retain(prev Assignment) (owner []int, owned [][]int) {
	owner = g.unowned()
	owned = make([][]int, len(g.members))
	for m, mem := range g.members {
		for _, tp := range prev[mem.ID] {
			i, ok := g.index(tp)
			if !ok || owner[i] >= 0 || !g.subscribed[m][g.topicIndex[tp.Topic]] {
				continue
			}
			owner[i] = m
			owned[m] = append(owned[m], i)
		}
		slices.Sort(owned[m])
	}
	return owner, owned
}

// homogeneous reports whether every member subscribes to every topic.
func (g *group) homogeneous() bool {
	for _, subs := range g.subscribers {
		if len(subs) != len(g.members) {
			return false
		}
	}
	return true
}

// balanceQuotas is the homogeneous path; see uniformAssignor.
func (g *group) balanceQuotas(owner []int, owned [][]int) {
	n := len(g.members)
	q, r := g.total/n, g.total%n
	byRetained := make([]int, n)
	for m := range byRetained {
		byRetained[m] = m
	}
	slices.SortStableFunc(byRetained, func(a, b int) int { return cmp.Compare(len(owned[b]), len(owned[a])) })
	deficit := make([]int, n)
	for k, m := range byRetained {
		quota := q
		if k < r {
			quota++
		}
		if len(owned[m]) > quota {
			for _, i := range owned[m][quota:] {
				owner[i] = -1
			}
		}
		deficit[m] = quota - min(len(owned[m]), quota)
	}
	var takers []int
	for m := range n {
		if deficit[m] > 0 {
			takers = append(takers, m)
		}
	}
	next := 0
	for i, m := range owner {
		if m >= 0 {
			continue
		}
		// Terminates: the deficits add up to the number of unowned
		// partitions (the quotas add up to P).
		for deficit[takers[next]] == 0 {
			next = (next + 1) % len(takers)
		}
		owner[i] = takers[next]
		deficit[takers[next]]--
		next = (next + 1) % len(takers)
	}
}

// balanceFlow is the heterogeneous path; see uniformAssignor.
func (g *group) balanceFlow(owner []int) {
	// held[m][t] lists the partition numbers of topic t that member m
	// owns, ascending.
	held := make([][][]int32, len(g.members))
	count := make([]int, len(g.members))
	for m := range held {
		held[m] = make([][]int32, len(g.topics))
	}
	var free []int
	for i, m := range owner {
		if m < 0 {
			free = append(free, i)
			continue
		}
		t := g.topicOf(i)
		held[m][t] = append(held[m][t], int32(i-g.base[t]))
		count[m]++
	}

	// Step 1: unowned partitions, most constrained first, each to its
	// topic's least loaded subscriber.
	slices.SortStableFunc(free, func(a, b int) int {
		return cmp.Compare(len(g.subscribers[g.topicOf(a)]), len(g.subscribers[g.topicOf(b)]))
	})
	for _, i := range free {
		t := g.topicOf(i)
		best := g.subscribers[t][0]
		for _, m := range g.subscribers[t][1:] {
			if count[m] < count[best] {
				best = m
			}
		}
		held[best][t] = insertSorted(held[best][t], int32(i-g.base[t]))
		count[best]++
	}

	// Step 2: shift along chains of reassignments until none helps.
	for g.augment(held, count) {
	}

	for m := range held {
		for t, ps := range held[m] {
			for _, p := range ps {
				owner[g.base[t]+int(p)] = m
			}
		}
	}
}

// augment makes one improving move: it takes the most loaded member src
// (ties by ID) from which a chain of reassignments reaches a member dst
// with at least two partitions fewer: src gives a partition to m1, which
// gives one to m2, ..., which gives one to dst, each a partition of a topic
// the receiver subscribes to. Only src and dst change counts. dst is the
// least loaded member reachable, then the nearest (breadth-first, so the
// fewest partitions move), then the first found; each giver gives its
// highest partition of the topic. It reports whether it made a move.
//
// The chains are what make the result optimal: with a: {t1}, b: {t1, t2},
// c: {t2} and counts a=1 b=2 c=3, no single move helps (b is only one
// below c), but c→b (t2) plus b→a (t1) gives 2, 2, 2.
func (g *group) augment(held [][][]int32, count []int) bool {
	n := len(g.members)
	order := make([]int, n)
	for m := range order {
		order[m] = m
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(count[b], count[a]) })
	lowest := count[order[n-1]]
	from := make([]int, n) // BFS tree: from[m] gives to m ...
	via := make([]int, n)  // ... a partition of topic via[m]
	visited := make([]bool, n)
	for _, src := range order {
		if count[src]-lowest < 2 {
			return false // nobody can take from src, nor from anyone after it
		}
		clear(visited)
		visited[src] = true
		queue, dst := []int{src}, -1
		for len(queue) > 0 {
			m := queue[0]
			queue = queue[1:]
			for t := range g.topics {
				if len(held[m][t]) == 0 {
					continue
				}
				for _, o := range g.subscribers[t] {
					if visited[o] {
						continue
					}
					visited[o], from[o], via[o] = true, m, t
					queue = append(queue, o)
					if dst < 0 || count[o] < count[dst] {
						dst = o
					}
				}
			}
		}
		if dst < 0 || count[src]-count[dst] < 2 {
			continue
		}
		// From dst back to src: each giver gives before it receives, so it
		// still holds the partition its edge was found with.
		for o := dst; o != src; o = from[o] {
			giver, t := from[o], via[o]
			last := len(held[giver][t]) - 1
			p := held[giver][t][last]
			held[giver][t] = held[giver][t][:last]
			held[o][t] = insertSorted(held[o][t], p)
		}
		count[src]--
		count[dst]++
		return true
	}
	return false
}

func insertSorted(l []int32, p int32) []int32 {
	k, _ := slices.BinarySearch(l, p)
	return slices.Insert(l, k, p)
}
