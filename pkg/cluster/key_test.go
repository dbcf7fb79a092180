package cluster

import (
	"bytes"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// Gossip encrypted with a key (Config.Key): brokers with the same key form
// a cluster; one with another key, or none, cannot join it.
func TestGossipKey(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	start := func(id NodeID, key []byte, seeds []string, log *zap.Logger) *Membership {
		m, err := Join(Config{NodeID: id, GossipAddr: "127.0.0.1:0", Seeds: seeds, Local: true, JoinInterval: 50 * time.Millisecond,
			Key: key, Logger: log, Meta: Meta{NodeID: id, APIAddr: "127.0.0.1:1" + id.String(), RaftAddr: "127.0.0.1:2" + id.String()}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	m1 := start(1, key, nil, nil)
	m2 := start(2, key, []string{m1.Addr()}, nil)
	waitFor(t, m1, "the member with the key seen", func(ms []Member) bool { return countState(ms, Alive) == 2 })

	for _, tc := range []struct {
		name string
		key  []byte
	}{{"another key", bytes.Repeat([]byte{8}, 32)}, {"no key", nil}} {
		core, logs := observer.New(zapcore.DebugLevel)
		id := NodeID(3)
		if tc.key == nil {
			id = 4
		}
		m := start(id, tc.key, []string{m1.Addr(), m2.Addr()}, zap.New(core))
		// Wait until it has tried both seeds and failed, three times.
		deadline := time.Now().Add(20 * time.Second)
		for logs.FilterMessageSnippet("no seed answered yet").Len() < 3 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no failed join attempts logged: %v", tc.name, logs.All())
			}
			time.Sleep(10 * time.Millisecond) // polling the log; nothing to wait on
		}
		for _, mm := range []*Membership{m1, m2} {
			if n := len(mm.Members()); n != 2 {
				t.Fatalf("%s: a member with %s joined: %+v", tc.name, tc.name, mm.Members())
			}
		}
		if n := len(m.Members()); n != 1 {
			t.Fatalf("%s: it sees others: %+v", tc.name, m.Members())
		}
	}
}
