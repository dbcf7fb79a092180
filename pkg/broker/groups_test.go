package broker_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/brokertest"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/broker"
)

// Consumer groups on the coordinator, driven over the raw API.

type member struct {
	t      *testing.T
	addrs  []string
	group  string
	id     string
	epoch  int32
	inst   string
	owned  []int32
	told   []int32
	topic  string
	sessMs int32
}

// coordinator finds the group's coordinator's address.
func coordinator(t *testing.T, addrs []string, group string) string {
	t.Helper()
	return onLeader(t, addrs, func(c v1.StrataClient) (string, error) {
		r, err := c.FindCoordinator(ctx(t), &v1.FindCoordinatorRequest{Group: group})
		if err != nil {
			return "", err
		}
		return r.ApiAddr, nil
	})
}

// beat sends one heartbeat reporting m.owned, and records what it is told.
func (m *member) beat() error {
	m.t.Helper()
	req := &v1.GroupHeartbeatRequest{Group: m.group, MemberId: m.id, MemberEpoch: m.epoch, InstanceId: m.inst,
		Topics: []string{m.topic}, SessionTimeoutMs: m.sessMs, Owned: []*v1.TopicPartitions{{Topic: m.topic, Partitions: m.owned}}}
	var resp *v1.GroupHeartbeatResponse
	var err error
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err = dial(m.t, coordinator(m.t, m.addrs, m.group)).GroupHeartbeat(ctx(m.t), req)
		if err == nil || !errors.Is(apierr.FromStatus(err), apierr.ErrNotCoordinator) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // the coordinator is loading the group; nothing to wait on
	}
	if err != nil {
		return apierr.FromStatus(err)
	}
	m.id, m.epoch, m.told = resp.MemberId, resp.MemberEpoch, nil
	for _, tp := range resp.Assignment {
		m.told = append(m.told, tp.Partitions...)
	}
	slices.Sort(m.told)
	return nil
}

// act releases what the member was not told and takes what it was.
func (m *member) act() { m.owned = slices.Clone(m.told) }

func (m *member) commit(p int32, offset int64) error {
	m.t.Helper()
	resp, err := dial(m.t, coordinator(m.t, m.addrs, m.group)).CommitOffsets(ctx(m.t), &v1.CommitOffsetsRequest{
		Group: m.group, MemberId: m.id, MemberEpoch: m.epoch, Offsets: []*v1.OffsetCommit{{Topic: m.topic, Partition: p, Offset: offset}}})
	if err != nil {
		return apierr.FromStatus(err)
	}
	return apierr.FromProto(resp.Results[0].Error)
}

func committed(t *testing.T, addrs []string, group, topic string, p int32) int64 {
	t.Helper()
	resp, err := dial(t, coordinator(t, addrs, group)).FetchOffsets(ctx(t), &v1.FetchOffsetsRequest{Group: group,
		Partitions: []*v1.TopicPartitions{{Topic: topic, Partitions: []int32{p}}}})
	if err != nil {
		t.Fatalf("fetch offsets: %v", err)
	}
	return resp.Offsets[0].Offset
}

// settle runs heartbeat rounds until no member's assignment changes, and
// checks at every step that no partition is told to two members.
func settle(t *testing.T, ms ...*member) {
	t.Helper()
	for round := 0; round < 20; round++ {
		changed := false
		for _, m := range ms {
			before, id := slices.Clone(m.owned), m.id
			if err := m.beat(); err != nil {
				t.Fatalf("heartbeat of %s: %v", m.id, err)
			}
			m.act()
			changed = changed || id != m.id || !slices.Equal(before, m.owned)
			seen := map[int32]string{}
			for _, o := range ms {
				for _, p := range o.owned {
					if other, dup := seen[p]; dup {
						t.Fatalf("partition %d owned by %s and %s at once", p, other, o.id)
					}
					seen[p] = o.id
				}
			}
		}
		if !changed {
			return
		}
	}
	t.Fatal("the group did not settle in 20 rounds")
}

func TestGroupCooperativeRebalanceAndFencing(t *testing.T) {
	b := brokertest.StartBroker(t)
	addrs := []string{b.APIAddr()}
	a := newClient(t, addrs).Admin()
	if _, err := a.CreateTopic(ctx(t), "q", 4, 1, nil); err != nil {
		t.Fatal(err)
	}
	m1 := &member{t: t, addrs: addrs, group: "g", topic: "q"}
	settle(t, m1)
	if !slices.Equal(m1.owned, []int32{0, 1, 2, 3}) {
		t.Fatalf("one member owns %v, want all four", m1.owned)
	}
	m2 := &member{t: t, addrs: addrs, group: "g", topic: "q"}
	settle(t, m1, m2)
	if len(m1.owned) != 2 || len(m2.owned) != 2 {
		t.Fatalf("two members own %v and %v, want two each", m1.owned, m2.owned)
	}
	// m1 kept two of its partitions throughout: cooperative.
	if err := m1.commit(m1.owned[0], 42); err != nil {
		t.Fatalf("commit: %v", err)
	}
	if got := committed(t, addrs, "g", "q", m1.owned[0]); got != 42 {
		t.Fatalf("committed %d, want 42", got)
	}
	// Never backwards.
	if err := m1.commit(m1.owned[0], 7); err != nil || committed(t, addrs, "g", "q", m1.owned[0]) != 42 {
		t.Fatalf("a lower commit moved the offset back (%v)", err)
	}
	// A partition it does not own, a stale epoch and an unknown member are fenced.
	if err := m1.commit(m2.owned[0], 1); !errors.Is(err, apierr.ErrFencedMemberEpoch) {
		t.Fatalf("commit of another member's partition: %v", err)
	}
	zombie := *m1
	zombie.epoch--
	if err := zombie.commit(m1.owned[0], 99); !errors.Is(err, apierr.ErrFencedMemberEpoch) && !errors.Is(err, apierr.ErrUnknownMember) {
		if err == nil {
			// epoch-1 is tolerated once (a lost heartbeat response); older is not.
			zombie.epoch -= 2
			err = zombie.commit(m1.owned[0], 99)
		}
		if !errors.Is(err, apierr.ErrFencedMemberEpoch) {
			t.Fatalf("zombie commit: %v", err)
		}
	}
	ghost := &member{t: t, addrs: addrs, group: "g", topic: "q", id: "nobody", epoch: 3}
	if err := ghost.beat(); !errors.Is(err, apierr.ErrUnknownMember) {
		t.Fatalf("heartbeat of an unknown member: %v", err)
	}
	// Deleting or resetting an active group is refused.
	if _, err := dial(t, coordinator(t, addrs, "g")).DeleteGroup(ctx(t), &v1.DeleteGroupRequest{Group: "g"}); !errors.Is(apierr.FromStatus(err), apierr.ErrGroupNotEmpty) {
		t.Fatalf("delete of an active group: %v", err)
	}
	// m2 leaves: m1 gets everything back.
	m2.epoch = -1
	if err := m2.beat(); err != nil {
		t.Fatal(err)
	}
	m2.owned = nil
	settle(t, m1)
	if !slices.Equal(m1.owned, []int32{0, 1, 2, 3}) {
		t.Fatalf("after a leave the remaining member owns %v", m1.owned)
	}
	d, err := dial(t, coordinator(t, addrs, "g")).DescribeGroup(ctx(t), &v1.DescribeGroupRequest{Group: "g"})
	if err != nil || len(d.Members) != 1 || d.State != "stable" || len(d.Partitions) != 4 {
		t.Fatalf("describe: %+v, %v", d, err)
	}
}

func TestGroupSessionExpiryAndStaticMember(t *testing.T) {
	b := brokertest.StartBroker(t)
	addrs := []string{b.APIAddr()}
	a := newClient(t, addrs).Admin()
	if _, err := a.CreateTopic(ctx(t), "s", 4, 1, nil); err != nil {
		t.Fatal(err)
	}
	static := &member{t: t, addrs: addrs, group: "sg", topic: "s", inst: "host-a", sessMs: 1000}
	other := &member{t: t, addrs: addrs, group: "sg", topic: "s", sessMs: 1000}
	settle(t, static, other)
	mine := slices.Clone(static.owned)

	// The static member restarts: it leaves with -2 and rejoins as a new
	// process (epoch 0, no member id) with the same instance id.
	static.epoch = -2
	if err := static.beat(); err != nil {
		t.Fatal(err)
	}
	restarted := &member{t: t, addrs: addrs, group: "sg", topic: "s", inst: "host-a", sessMs: 1000}
	if err := restarted.beat(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(restarted.told, mine) {
		t.Fatalf("static member got %v back, had %v", restarted.told, mine)
	}
	restarted.act()

	// other stops heartbeating: after its session it is removed and the
	// static member gets its partitions.
	deadline := time.Now().Add(10 * time.Second)
	for len(restarted.owned) != 4 {
		if time.Now().After(deadline) {
			t.Fatalf("expired member's partitions not reassigned: static member owns %v", restarted.owned)
		}
		time.Sleep(200 * time.Millisecond) // heartbeating at its interval
		if err := restarted.beat(); err != nil {
			t.Fatal(err)
		}
		restarted.act()
	}
	if err := other.beat(); !errors.Is(err, apierr.ErrUnknownMember) {
		t.Fatalf("heartbeat after expiry: %v", err)
	}
}

func TestGroupOffsetsSurviveCoordinatorFailover(t *testing.T) {
	c := brokertest.StartCluster(t, 3, func(cfg *broker.Config) { cfg.OffsetsPartitions = 3 })
	addrs := c.APIAddrs()
	a := newClient(t, addrs).Admin()
	if _, err := a.CreateTopic(ctx(t), "d", 2, 3, nil); err != nil {
		t.Fatal(err)
	}
	m := &member{t: t, addrs: addrs, group: "durable", topic: "d"}
	settle(t, m)
	resp, err := dial(t, addrs[0]).FindCoordinator(ctx(t), &v1.FindCoordinatorRequest{Group: "durable"})
	if err != nil {
		t.Fatal(err)
	}
	// Commit continuously, on the coordinator found at the start, and stop
	// its broker in the middle: every acknowledged commit must survive.
	coord := dial(t, resp.ApiAddr)
	acked := make(chan int64, 1)
	go func() {
		last := int64(-1)
		defer func() { acked <- last }()
		for off := int64(1); off < 100_000; off++ {
			r, err := coord.CommitOffsets(ctx(t), &v1.CommitOffsetsRequest{Group: "durable", MemberId: m.id, MemberEpoch: m.epoch,
				Offsets: []*v1.OffsetCommit{{Topic: "d", Partition: 0, Offset: off}}})
			if err != nil || r.Results[0].Error != nil {
				return
			}
			last = off
		}
	}()
	time.Sleep(300 * time.Millisecond) // let some commits through before the kill
	c.Stop(resp.NodeId)
	last := <-acked
	if last < 1 {
		t.Fatalf("no commit acknowledged before the coordinator stopped")
	}
	var live []string
	for _, b := range c.Brokers {
		if b != nil {
			live = append(live, b.APIAddr())
		}
	}
	m.addrs = live
	eventually(t, "a new coordinator serves the committed offsets", func() bool {
		r, err := dial(t, live[0]).FindCoordinator(ctx(t), &v1.FindCoordinatorRequest{Group: "durable"})
		if err != nil || r.NodeId == resp.NodeId {
			return false
		}
		f, err := dial(t, r.ApiAddr).FetchOffsets(ctx(t), &v1.FetchOffsetsRequest{Group: "durable"})
		if err != nil || len(f.Offsets) == 0 {
			return false
		}
		if f.Offsets[0].Offset < last {
			t.Fatalf("acknowledged commit %d lost: the new coordinator has %d", last, f.Offsets[0].Offset)
		}
		return true
	})
	// The member carries on with the new coordinator, which restored it.
	if err := m.beat(); err != nil {
		t.Fatalf("heartbeat after failover: %v", err)
	}
	if err := m.commit(0, 200_000); err != nil {
		t.Fatalf("commit after failover: %v", err)
	}
	t.Logf("%d commits acknowledged before the coordinator's broker stopped; all survived", last)
}
