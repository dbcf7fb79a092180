package assign

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// TopicPartition names one partition of a topic.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// String renders "orders-3", the way Kafka tools print a partition.
func (tp TopicPartition) String() string {
	return tp.Topic + "-" + strconv.Itoa(int(tp.Partition))
}

// Compare orders partitions by topic, then by partition number: the order
// of every list this package returns.
func Compare(a, b TopicPartition) int {
	if c := strings.Compare(a.Topic, b.Topic); c != 0 {
		return c
	}
	return cmp.Compare(a.Partition, b.Partition)
}

// Member is one member of a consumer group as the assignors see it.
type Member struct {
	// ID is the member ID the coordinator gave the member; unique in the
	// group and never empty.
	ID string
	// InstanceID is the static member's group.instance.id, empty for a
	// dynamic member. The range and roundrobin assignors order static
	// members by it (as Kafka does), so a static member that restarts
	// with a new member ID gets the same partitions back.
	InstanceID string
	// Topics is the resolved subscription: topic names, a regular
	// expression already matched against the topics that exist. Order and
	// duplicates do not matter; topics missing from Topics are ignored.
	Topics []string
}

// Topics maps each existing topic to its partition count.
type Topics map[string]int32

// Assignment maps a member ID to its partitions, each list sorted by
// Compare. The assignors give every member an entry, possibly empty.
type Assignment map[string][]TopicPartition

// String renders the assignment with members in ID order, for logs and
// tests: "a=[t-0 t-1] b=[]".
func (a Assignment) String() string {
	var b strings.Builder
	for i, id := range sortedKeys(a) {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(id)
		b.WriteString("=[")
		for j, tp := range a[id] {
			if j > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(tp.String())
		}
		b.WriteByte(']')
	}
	return b.String()
}

// Assignor computes a group's target assignment: which member should own
// each partition once the group has settled.
//
// Rules for implementations:
//  1. Assign is a pure function of its arguments: the same input gives the
//     same output, whatever the order of members, of their topics or of
//     map iteration. No goroutines, clock, randomness or I/O.
//  2. It may be called from several goroutines at once, reads its
//     arguments without modifying or retaining them, and returns an
//     Assignment (maps and slices) that belongs to the caller.
//  3. Every member gets an entry. Every partition of every topic in topics
//     that at least one member subscribes to goes to exactly one member
//     that subscribes to its topic; nothing else is assigned.
//  4. prev is the previous target assignment (nil for none). It may name
//     members that left, topics that were deleted, partitions that no
//     longer exist: those entries are ignored, never an error. Assignors
//     that are not sticky ignore prev entirely.
//  5. The only errors are the invalid-input sentinels of this package.
type Assignor interface {
	// Name is the name a member asks for in GroupHeartbeatRequest.assignor.
	Name() string
	Assign(members []Member, topics Topics, prev Assignment) (Assignment, error)
}

// The assignor names, as members send them.
const (
	Uniform    = "uniform"
	Range      = "range"
	RoundRobin = "roundrobin"
	// Default is the assignor of a group whose members name none.
	Default = Uniform
)

// New returns the assignor called name; "" means Default. It fails with
// ErrUnknownAssignor for any other name.
func New(name string) (Assignor, error) {
	switch name {
	case "", Uniform:
		return uniformAssignor{}, nil
	case Range:
		return rangeAssignor{}, nil
	case RoundRobin:
		return roundRobinAssignor{}, nil
	}
	return nil, fmt.Errorf("%q: %w", name, ErrUnknownAssignor)
}

// Names lists the assignor names New accepts, sorted.
func Names() []string { return []string{Range, RoundRobin, Uniform} }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
