package assign

// rangeAssignor is Kafka's RangeAssignor: topic by topic, the members
// subscribed to the topic (in kafkaOrder) get contiguous ranges of its
// partitions; with P partitions and C members, the first P%C members get
// P/C+1 and the others P/C. It ignores prev. Its known weakness, kept for
// compatibility: the first members get the extra partition of every topic,
// so with many topics they carry more than the others.
type rangeAssignor struct{}

func (rangeAssignor) Name() string { return Range }

func (rangeAssignor) Assign(members []Member, topics Topics, _ Assignment) (Assignment, error) {
	g, err := prepare(members, topics)
	if err != nil {
		return nil, err
	}
	order := g.kafkaOrder()
	owner := g.unowned()
	for t := range g.topics {
		var subs []int
		for _, m := range order {
			if g.subscribed[m][t] {
				subs = append(subs, m)
			}
		}
		n := int(g.counts[t])
		per, extra := n/len(subs), n%len(subs) // every topic in g.topics has a subscriber
		for k, m := range subs {
			start, length := per*k+min(k, extra), per
			if k < extra {
				length++
			}
			for p := start; p < start+length; p++ {
				owner[g.base[t]+p] = m
			}
		}
	}
	return g.result(owner), nil
}
