package metadata

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/stratalog/strata/pkg/apierr"
)

// validState has brokers 1..3, a cluster id and topic "orders" with two
// partitions on them.
func validState(t *testing.T) state {
	t.Helper()
	s := newState()
	for _, c := range []Change{
		InitCluster{ClusterID: "c1"},
		RegisterBroker{Broker{ID: 1, APIAddr: "127.0.0.1:9290", RaftAddr: "127.0.0.1:9291", HTTPAddr: "127.0.0.1:9292"}},
		RegisterBroker{Broker{ID: 2, APIAddr: "h2:9290", RaftAddr: "h2:9291"}},
		RegisterBroker{Broker{ID: 3, APIAddr: "[::1]:9290", RaftAddr: "[::1]:9291"}},
		CreateTopic{goodTopic("orders")},
	} {
		if err := s.apply(c); err != nil {
			t.Fatalf("%#v: %v", c, err)
		}
	}
	return s
}

func goodTopic(name string) Topic {
	return Topic{Name: name, ID: "0123abcd", Partitions: 2, ReplicationFactor: 2,
		Config:      map[string]string{"retention.ms": "1000"},
		Assignments: []Assignment{{Replicas: []NodeID{1, 2}, Initial: []NodeID{1, 2}}, {Replicas: []NodeID{2, 3}, Initial: []NodeID{2, 3}}}}
}

func withTopic(f func(*Topic)) CreateTopic {
	t := goodTopic("new")
	f(&t)
	return CreateTopic{t}
}

// TestApplyRefusesInvalidChanges: every forged or invalid change is refused
// by the state machine with the expected code, and the state is unchanged.
func TestApplyRefusesInvalidChanges(t *testing.T) {
	tests := []struct {
		name string
		c    Change
		want error
	}{
		{"path traversal name", withTopic(func(t *Topic) { t.Name = "../../x" }), apierr.ErrInvalidTopic},
		{"slash in name", withTopic(func(t *Topic) { t.Name = "a/b" }), apierr.ErrInvalidTopic},
		{"dot", withTopic(func(t *Topic) { t.Name = "." }), apierr.ErrInvalidTopic},
		{"dotdot", withTopic(func(t *Topic) { t.Name = ".." }), apierr.ErrInvalidTopic},
		{"empty name", withTopic(func(t *Topic) { t.Name = "" }), apierr.ErrInvalidTopic},
		{"long name", withTopic(func(t *Topic) { t.Name = strings.Repeat("a", 250) }), apierr.ErrInvalidTopic},
		{"internal dotdot", withTopic(func(t *Topic) { t.Name = "__/../../x" }), apierr.ErrInvalidTopic},
		{"traversal id", withTopic(func(t *Topic) { t.ID = "../../../etc" }), apierr.ErrInvalidRequest},
		{"empty id", withTopic(func(t *Topic) { t.ID = "" }), apierr.ErrInvalidRequest},
		{"long id", withTopic(func(t *Topic) { t.ID = strings.Repeat("a", 65) }), apierr.ErrInvalidRequest},
		{"zero partitions", withTopic(func(t *Topic) { t.Partitions, t.Assignments = 0, nil }), apierr.ErrInvalidPartitions},
		{"too many partitions", withTopic(func(t *Topic) { t.Partitions = MaxPartitions + 1 }), apierr.ErrInvalidPartitions},
		{"assignments mismatch", withTopic(func(t *Topic) { t.Partitions = 3 }), apierr.ErrInvalidRequest},
		{"zero replication", withTopic(func(t *Topic) { t.ReplicationFactor = 0 }), apierr.ErrInvalidReplication},
		{"empty replica list", withTopic(func(t *Topic) { t.Assignments[0].Replicas = nil }), apierr.ErrInvalidReplication},
		{"unknown broker", withTopic(func(t *Topic) { t.Assignments[0].Replicas = []NodeID{1, 9} }), apierr.ErrInvalidReplication},
		{"duplicate replica", withTopic(func(t *Topic) { t.Assignments[1].Replicas = []NodeID{2, 2} }), apierr.ErrInvalidReplication},
		{"duplicate initial", withTopic(func(t *Topic) { t.Assignments[1].Initial = []NodeID{3, 3} }), apierr.ErrInvalidReplication},
		{"leader not a replica", withTopic(func(t *Topic) { t.Assignments[0].Leader = 3 }), apierr.ErrInvalidRequest},
		{"unknown config", withTopic(func(t *Topic) { t.Config = map[string]string{"rm -rf": "1"} }), apierr.ErrInvalidConfig},
		{"config out of range", withTopic(func(t *Topic) { t.Config = map[string]string{"segment.bytes": "1"} }), apierr.ErrInvalidConfig},
		{"message over segment", withTopic(func(t *Topic) {
			t.Config = map[string]string{"segment.bytes": "1024", "max.message.bytes": "2048"}
		}), apierr.ErrInvalidConfig},
		{"immutable with retention", withTopic(func(t *Topic) {
			t.Config = map[string]string{"immutable": "true", "retention.ms": "5"}
		}), apierr.ErrInvalidConfig},
		{"huge config value", withTopic(func(t *Topic) { t.Config = map[string]string{"cleanup.policy": strings.Repeat("x", 2000)} }), apierr.ErrInvalidConfig},
		{"existing topic", CreateTopic{goodTopic("orders")}, apierr.ErrTopicExists},
		{"delete unknown", DeleteTopic{Name: "nope"}, apierr.ErrUnknownTopic},
		{"alter unknown key", AlterTopicConfig{Name: "orders", Set: map[string]string{"owner": "me"}}, apierr.ErrInvalidConfig},
		{"alter bad value", AlterTopicConfig{Name: "orders", Set: map[string]string{"retention.ms": "-7"}}, apierr.ErrInvalidConfig},
		{"alter delete unknown key", AlterTopicConfig{Name: "orders", Delete: []string{"../x"}}, apierr.ErrInvalidConfig},
		{"alter unknown topic", AlterTopicConfig{Name: "nope", Set: map[string]string{"retention.ms": "1"}}, apierr.ErrUnknownTopic},
		{"bad cluster id", InitCluster{ClusterID: "../x"}, apierr.ErrInvalidRequest},
		{"broker 0", RegisterBroker{Broker{ID: 0, APIAddr: "h:1", RaftAddr: "h:2"}}, apierr.ErrInvalidRequest},
		{"broker without port", RegisterBroker{Broker{ID: 4, APIAddr: "h", RaftAddr: "h:2"}}, apierr.ErrInvalidRequest},
		{"broker huge addr", RegisterBroker{Broker{ID: 4, APIAddr: strings.Repeat("h", 300) + ":1", RaftAddr: "h:2"}}, apierr.ErrInvalidRequest},
		{"listener bad name", RegisterBroker{Broker{ID: 4, APIAddr: "h:1", RaftAddr: "h:2", Listeners: map[string]string{"../x": "h:1"}}}, apierr.ErrInvalidRequest},
		{"listener bad addr", RegisterBroker{Broker{ID: 4, APIAddr: "h:1", RaftAddr: "h:2", Listeners: map[string]string{"CLIENT": "h:1", "EXTERNAL": "h"}}}, apierr.ErrInvalidRequest},
		{"listener api addr not among them", RegisterBroker{Broker{ID: 4, APIAddr: "h:1", RaftAddr: "h:2", Listeners: map[string]string{"EXTERNAL": "h:3"}}}, apierr.ErrInvalidRequest},
		{"too many listeners", RegisterBroker{Broker{ID: 4, APIAddr: "h:1", RaftAddr: "h:2", Listeners: manyListeners(MaxListeners + 1)}}, apierr.ErrInvalidRequest},
		{"leader unknown broker", SetLeader{Topic: "orders", TopicID: "0123abcd", Partition: 0, Leader: 9, Term: 3}, apierr.ErrInvalidRequest},
		{"reassign empty", Reassign{Topic: "orders", Partition: 0, Replicas: nil}, apierr.ErrInvalidReplication},
		{"reassign unknown broker", Reassign{Topic: "orders", Partition: 0, Replicas: []NodeID{7}}, apierr.ErrInvalidReplication},
		{"reassign duplicate", Reassign{Topic: "orders", Partition: 0, Replicas: []NodeID{1, 1}}, apierr.ErrInvalidReplication},
		{"reassign too many", Reassign{Topic: "orders", Partition: 0, Replicas: make([]NodeID, MaxReplicas+1)}, apierr.ErrInvalidReplication},
		{"reassign bad partition", Reassign{Topic: "orders", Partition: 5, Replicas: []NodeID{1}}, apierr.ErrUnknownPartition},
		{"reassign negative partition", Reassign{Topic: "orders", Partition: -1, Replicas: []NodeID{1}}, apierr.ErrUnknownPartition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validState(t)
			before := s.clone()
			next := s.clone()
			err := next.apply(tt.c)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			// The FSM applies to a clone and keeps it only on success; the
			// original is untouched either way.
			if !reflect.DeepEqual(s, before) {
				t.Fatal("a refused change modified the state")
			}
		})
	}
}

func TestApplyAcceptsValidChanges(t *testing.T) {
	s := validState(t)
	for _, c := range []Change{
		CreateTopic{func() Topic {
			t := goodTopic("__consumer_offsets")
			t.Config = map[string]string{"cleanup.policy": "compact", "segment.bytes": "104857600"}
			return t
		}()},
		CreateTopic{func() Topic { t := goodTopic("x"); t.Config = nil; t.Assignments[1].Initial = nil; return t }()},
		AlterTopicConfig{Name: "orders", Set: map[string]string{"max.message.bytes": "2048"}, Delete: []string{"retention.ms"}},
		SetLeader{Topic: "orders", TopicID: "0123abcd", Partition: 1, Leader: 3, Term: 2},
		Reassign{Topic: "orders", Partition: 0, Replicas: []NodeID{3, 1}},
		DeleteTopic{Name: "x"},
	} {
		if err := s.apply(c); err != nil {
			t.Fatalf("%#v: %v", c, err)
		}
	}
	if got := s.Topics["orders"].Assignments[0].Replicas; !reflect.DeepEqual(got, []NodeID{3, 1}) {
		t.Fatalf("reassign: %v", got)
	}
}

// TestFSMRefusesForgedEntry feeds the FSM raw log entries as a forged
// ApplyMetadata would carry them: each returns an error, and the state is
// what it was.
func TestFSMRefusesForgedEntry(t *testing.T) {
	f := &fsm{st: validState(t), notify: func() {}}
	before := f.read()
	forged := []string{
		`{"kind":"metadata.CreateTopic","change":{"Topic":{"name":"../../x","id":"ab","partitions":1,"replication_factor":1,"assignments":[{"replicas":[1]}]}}}`,
		`{"kind":"metadata.CreateTopic","change":{"Topic":{"name":"ok","id":"ab","partitions":1,"replication_factor":1,"assignments":[{"replicas":[]}]}}}`,
		`{"kind":"metadata.Reassign","change":{"Topic":"orders","Partition":0,"Replicas":[]}}`,
		`{"kind":"metadata.Reassign","change":{"Topic":"orders","Partition":0,"Replicas":null}}`,
		`{"kind":"metadata.CreateTopic","change":{"Topic":{"name":"ok","id":"ab","partitions":-1}}}`,
		`{"kind":"metadata.Nope","change":{}}`,
		`{"kind":"metadata.CreateTopic","change":[1,2]}`,
	}
	for _, e := range forged {
		res := f.Apply(&raft.Log{Data: []byte(e)})
		if err, _ := res.(error); err == nil {
			t.Errorf("forged entry accepted: %s", e)
		}
	}
	if !reflect.DeepEqual(f.read(), before) {
		t.Fatal("forged entries changed the state")
	}
}

func TestPartitionDirStaysUnderDataDir(t *testing.T) {
	data := t.TempDir()
	got, err := PartitionDir(data, Topic{Name: "orders", ID: "abc"}, 3)
	if err != nil || got != filepath.Join(data, "topics", "orders-abc", "3") {
		t.Fatalf("got %q, %v", got, err)
	}
	if _, err := PartitionDir(data, Topic{Name: "__consumer_offsets", ID: "abc"}, 0); err != nil {
		t.Fatalf("internal topic: %v", err)
	}
	for _, tp := range []struct {
		t Topic
		p int32
	}{
		{Topic{Name: "../../etc", ID: "abc"}, 0},
		{Topic{Name: "..", ID: "abc"}, 0},
		{Topic{Name: "a/b", ID: "abc"}, 0},
		{Topic{Name: "ok", ID: "../../x"}, 0},
		{Topic{Name: "ok", ID: "a/../.."}, 0},
		{Topic{Name: "ok", ID: ""}, 0},
		{Topic{Name: "", ID: "abc"}, 0},
		{Topic{Name: "ok", ID: "abc"}, -1},
	} {
		if dir, err := PartitionDir(data, tp.t, tp.p); err == nil {
			t.Errorf("%+v/%d: accepted as %q", tp.t, tp.p, dir)
		}
	}
}

func TestTimestampConfig(t *testing.T) {
	c, err := ParseTopicConfig(nil, nil)
	if err != nil || c.TimestampType != CreateTime || c.TimestampAfterMaxMs != 3600000 || c.TimestampBeforeMaxMs != math.MaxInt64 {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	c, err = ParseTopicConfig(map[string]string{KeyTimestampType: LogAppendTime, KeyTimestampBeforeMax: "0"}, nil)
	if err != nil || c.TimestampType != LogAppendTime || c.TimestampBeforeMaxMs != 0 {
		t.Fatalf("set: %+v %v", c, err)
	}
	for _, bad := range []map[string]string{
		{KeyTimestampType: "Now"}, {KeyTimestampType: "createtime"}, {KeyTimestampAfterMax: "-1"}, {KeyTimestampBeforeMax: "soon"},
	} {
		if _, err := ParseTopicConfig(bad, nil); !errors.Is(err, apierr.ErrInvalidConfig) {
			t.Errorf("%v: got %v", bad, err)
		}
	}
}

func manyListeners(n int) map[string]string {
	m := map[string]string{"CLIENT": "h:1"}
	for i := 1; i < n; i++ {
		m[fmt.Sprintf("L%d", i)] = fmt.Sprintf("h:%d", 100+i)
	}
	return m
}

// A record with listeners, and one from before them, both apply; the old
// one's only listener is CLIENT at its API address.
func TestRegisterBrokerListeners(t *testing.T) {
	s := validState(t)
	b := Broker{ID: 4, APIAddr: "h4:9290", RaftAddr: "h4:9292", Listeners: map[string]string{"CLIENT": "h4:9290", "EXTERNAL": "127.0.0.1:19490"}}
	if err := s.apply(RegisterBroker{b}); err != nil {
		t.Fatal(err)
	}
	if addr, ok := s.Brokers[4].ListenerAddr("EXTERNAL"); !ok || addr != "127.0.0.1:19490" {
		t.Fatalf("EXTERNAL of broker 4: %q %v", addr, ok)
	}
	if _, ok := s.Brokers[4].ListenerAddr("OTHER"); ok {
		t.Fatal("broker 4 has no OTHER listener")
	}
	old := s.Brokers[2]
	if addr, ok := old.ListenerAddr("CLIENT"); !ok || addr != old.APIAddr {
		t.Fatalf("old record's CLIENT: %q %v, want %s", addr, ok, old.APIAddr)
	}
	if _, ok := old.ListenerAddr("EXTERNAL"); ok {
		t.Fatal("an old record has only CLIENT")
	}
	if !b.Equal(s.Brokers[4]) || b.Equal(old) {
		t.Fatal("Equal")
	}
}
