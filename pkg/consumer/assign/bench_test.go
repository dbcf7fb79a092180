package assign

import (
	"fmt"
	"testing"
)

// benchGroup is n members subscribed to 10 topics of partitions/10
// partitions each; odd members of a heterogeneous group subscribe to only
// the first half of the topics.
func benchGroup(n, partitions int, heterogeneous bool) ([]Member, Topics) {
	topics := Topics{}
	var names []string
	for t := range 10 {
		name := fmt.Sprintf("topic-%d", t)
		names = append(names, name)
		topics[name] = int32(partitions / 10)
	}
	ms := make([]Member, n)
	for i := range ms {
		ms[i] = Member{ID: fmt.Sprintf("member-%03d", i), Topics: names}
		if heterogeneous && i%2 == 1 {
			ms[i].Topics = names[:5]
		}
	}
	return ms, topics
}

// BenchmarkUniform measures the uniform assignor on a fresh group, on a
// settled group (nothing moves), and on one member joining a settled
// group (the minimum moves).
func BenchmarkUniform(b *testing.B) {
	for _, heterogeneous := range []bool{false, true} {
		for _, size := range []struct{ members, partitions int }{{10, 100}, {100, 10_000}} {
			ms, topics := benchGroup(size.members, size.partitions, heterogeneous)
			u, _ := New(Uniform)
			before, _ := u.Assign(ms[:len(ms)-1], topics, nil)
			settled, _ := u.Assign(ms, topics, before)
			name := fmt.Sprintf("%dx%d", size.members, size.partitions)
			if heterogeneous {
				name += "-heterogeneous"
			}
			for _, c := range []struct {
				name string
				prev Assignment
			}{{"fresh", nil}, {"settled", settled}, {"join", before}} {
				b.Run(name+"/"+c.name, func(b *testing.B) {
					for b.Loop() {
						if _, err := u.Assign(ms, topics, c.prev); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}

// BenchmarkReconcile measures one reconciliation of 100 members over
// 10,000 partitions right after a member joined.
func BenchmarkReconcile(b *testing.B) {
	ms, topics := benchGroup(100, 10_000, false)
	u, _ := New(Uniform)
	owned, _ := u.Assign(ms[:99], topics, nil)
	target, _ := u.Assign(ms, topics, owned)
	for b.Loop() {
		Reconcile(target, owned)
	}
}
