package assign

// roundRobinAssignor is Kafka's RoundRobinAssignor: the partitions of
// every subscribed topic, sorted by topic then partition, are dealt one at
// a time to the members in kafkaOrder, in a circle; a member not
// subscribed to a partition's topic is skipped (the circle moves on). It
// ignores prev. In a group where every member has the same subscription,
// the counts differ by at most one.
type roundRobinAssignor struct{}

func (roundRobinAssignor) Name() string { return RoundRobin }

func (roundRobinAssignor) Assign(members []Member, topics Topics, _ Assignment) (Assignment, error) {
	g, err := prepare(members, topics)
	if err != nil {
		return nil, err
	}
	order := g.kafkaOrder()
	owner := g.unowned()
	next := 0
	for t := range g.topics {
		for p := range int(g.counts[t]) {
			// Terminates: every topic in g.topics has a subscriber.
			for !g.subscribed[order[next]][t] {
				next = (next + 1) % len(order)
			}
			owner[g.base[t]+p] = order[next]
			next = (next + 1) % len(order)
		}
	}
	return g.result(owner), nil
}
