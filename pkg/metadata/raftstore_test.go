package metadata

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/goleak"

	"github.com/stratalog/strata/pkg/apierr"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func fast(c *raft.Config) {
	c.HeartbeatTimeout = 150 * time.Millisecond
	c.ElectionTimeout = 150 * time.Millisecond
	c.LeaderLeaseTimeout = 100 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
}

func TestChangeCodecRoundTrip(t *testing.T) {
	changes := []Change{
		CreateTopic{Topic{Name: "a", ID: "x", Partitions: 2, ReplicationFactor: 3, Config: map[string]string{"k": "v"},
			Assignments: []Assignment{{Replicas: []NodeID{1, 2, 3}, Initial: []NodeID{1, 2, 3}}}}},
		DeleteTopic{Name: "a"},
		AlterTopicConfig{Name: "a", Set: map[string]string{"retention.ms": "1"}, Delete: []string{"segment.ms"}},
		InitCluster{ClusterID: "c"},
		RegisterBroker{Broker{ID: 2, APIAddr: "a", RaftAddr: "r", HTTPAddr: "h"}},
		SetLeader{Topic: "a", TopicID: "x", Partition: 1, Leader: 3, Term: 9},
		Reassign{Topic: "a", Partition: 0, Replicas: []NodeID{4, 5, 6}},
	}
	for _, c := range changes {
		b, err := EncodeChange(c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeChange(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("round trip: got %#v, want %#v", got, c)
		}
	}
	if _, err := DecodeChange([]byte(`{"kind":"metadata.Future","change":{}}`)); err == nil {
		t.Fatal("unknown kind accepted")
	}
	if _, err := DecodeChange([]byte(`{`)); err == nil {
		t.Fatal("garbage accepted")
	}
}

type node struct {
	id    NodeID
	dir   string
	trans *raft.InmemTransport
	store *RaftStore
}

func startQuorum(t *testing.T, n int) []*node {
	t.Helper()
	nodes := make([]*node, n)
	voters := map[NodeID]string{}
	for i := range nodes {
		addr, trans := raft.NewInmemTransport("")
		nodes[i] = &node{id: NodeID(i + 1), dir: t.TempDir(), trans: trans}
		voters[nodes[i].id] = string(addr)
	}
	for _, a := range nodes {
		for _, b := range nodes {
			a.trans.Connect(b.trans.LocalAddr(), b.trans)
		}
	}
	for _, nd := range nodes {
		nd.open(t)
		if err := nd.store.Bootstrap(voters); err != nil {
			t.Fatal(err)
		}
	}
	return nodes
}

func (nd *node) open(t *testing.T) {
	t.Helper()
	s, err := OpenRaftStore(RaftConfig{NodeID: nd.id, Dir: nd.dir, Transport: nd.trans, Tune: fast})
	if err != nil {
		t.Fatal(err)
	}
	nd.store = s
	t.Cleanup(func() { s.Close() })
}

func leader(t *testing.T, nodes []*node) *node {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, nd := range nodes {
			if nd.store != nil && nd.store.IsLeader() {
				return nd
			}
		}
		time.Sleep(10 * time.Millisecond) // polling raft state; raft offers no wait for "some node leads"
	}
	t.Fatal("no metadata leader within 10s")
	return nil
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRaftStoreReplicatesChanges(t *testing.T) {
	nodes := startQuorum(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l := leader(t, nodes)
	if err := l.store.Apply(ctx, InitCluster{ClusterID: "first"}); err != nil {
		t.Fatal(err)
	}
	if err := l.store.Apply(ctx, InitCluster{ClusterID: "second"}); err != nil {
		t.Fatal(err)
	}
	for _, nd := range nodes {
		addr := string(nd.trans.LocalAddr())
		if err := l.store.Apply(ctx, RegisterBroker{Broker{ID: nd.id, APIAddr: "127.0.0.1:1", RaftAddr: addr + ":1"}}); err != nil {
			t.Fatal(err)
		}
	}
	topic := Topic{Name: "orders", ID: NewID(), Partitions: 1, ReplicationFactor: 3,
		Assignments: []Assignment{{Replicas: []NodeID{1, 2, 3}, Initial: []NodeID{1, 2, 3}}}}
	if err := l.store.Apply(ctx, CreateTopic{topic}); err != nil {
		t.Fatal(err)
	}
	if err := l.store.Apply(ctx, CreateTopic{topic}); !errors.Is(err, apierr.ErrTopicExists) {
		t.Fatalf("duplicate create through raft: %v", err)
	}
	// An old leader's news never overrides a newer term.
	for _, c := range []SetLeader{{Topic: "orders", TopicID: topic.ID, Leader: 2, Term: 5}, {Topic: "orders", TopicID: topic.ID, Leader: 1, Term: 4}} {
		if err := l.store.Apply(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	for _, nd := range nodes {
		eventually(t, "replica sees the topic", func() bool {
			tp, ok := nd.store.Topic("orders")
			return ok && tp.Assignments[0].Leader == 2 && nd.store.ClusterID() == "first"
		})
	}
	var follower *node
	for _, nd := range nodes {
		if nd != l {
			follower = nd
		}
	}
	err := follower.store.Apply(ctx, DeleteTopic{Name: "orders"})
	var e *apierr.Error
	if !errors.As(err, &e) || !errors.Is(e, apierr.ErrNotLeader) || e.LeaderID != l.id {
		t.Fatalf("apply on a follower: %v", err)
	}

	// The leader stops: the others elect, keep the metadata, accept changes.
	if err := l.store.Close(); err != nil {
		t.Fatal(err)
	}
	l.store = nil
	l2 := leader(t, nodes)
	if err := l2.store.Apply(ctx, AlterTopicConfig{Name: "orders", Set: map[string]string{"retention.ms": "-1"}}); err != nil {
		t.Fatal(err)
	}
	// The old leader restarts from its directory and catches up.
	l.open(t)
	eventually(t, "restarted replica catches up", func() bool {
		tp, ok := l.store.Topic("orders")
		return ok && tp.Config["retention.ms"] == "-1"
	})
	cfg, err := l2.store.Configuration()
	if err != nil || len(cfg) != 3 {
		t.Fatalf("configuration: %v %v", cfg, err)
	}
}

// TestRaftStoreRefusesInvalidChangesEverywhere: a change that fails
// validation, committed through the quorum, returns its error to the
// proposer and leaves every replica's metadata as it was, the same on all.
func TestRaftStoreRefusesInvalidChangesEverywhere(t *testing.T) {
	nodes := startQuorum(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l := leader(t, nodes)
	for _, nd := range nodes {
		if err := l.store.Apply(ctx, RegisterBroker{Broker{ID: nd.id, APIAddr: "127.0.0.1:1", RaftAddr: "127.0.0.1:2"}}); err != nil {
			t.Fatal(err)
		}
	}
	topic := Topic{Name: "orders", ID: "abc", Partitions: 1, ReplicationFactor: 3,
		Assignments: []Assignment{{Replicas: []NodeID{1, 2, 3}, Initial: []NodeID{1, 2, 3}}}}
	if err := l.store.Apply(ctx, CreateTopic{topic}); err != nil {
		t.Fatal(err)
	}
	bad := topic
	bad.Name = "../../x"
	for _, c := range []Change{
		CreateTopic{bad},
		Reassign{Topic: "orders", Partition: 0, Replicas: nil},
		Reassign{Topic: "orders", Partition: 0, Replicas: []NodeID{1, 1}},
		AlterTopicConfig{Name: "orders", Set: map[string]string{"retention.ms": "-5"}},
	} {
		if err := l.store.Apply(ctx, c); err == nil {
			t.Fatalf("%#v accepted", c)
		}
	}
	// A valid change after them, so that every replica has applied them.
	if err := l.store.Apply(ctx, InitCluster{ClusterID: "last"}); err != nil {
		t.Fatal(err)
	}
	for _, nd := range nodes {
		eventually(t, "replica applied everything", func() bool { return nd.store.ClusterID() == "last" })
		tp, ok := nd.store.Topic("orders")
		if !ok || !reflect.DeepEqual(tp, topic) || len(nd.store.Topics()) != 1 {
			t.Fatalf("node %d: %+v (%d topics), want %+v", nd.id, tp, len(nd.store.Topics()), topic)
		}
	}
}
