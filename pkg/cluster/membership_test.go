package cluster

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// memberlist's shutdown does not wait for its packet handler goroutines.
		goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).packetHandler"),
		goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).streamListen"),
		goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).packetListen"),
	)
}

// waitFor polls cond until it holds or the deadline passes, waking on
// membership changes.
func waitFor(t *testing.T, m *Membership, what string, cond func([]Member) bool) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		ch := m.Changed()
		if cond(m.Members()) {
			return
		}
		select {
		case <-ch:
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			t.Fatalf("node %s: %s: not within 20s; members %+v", m.cfg.NodeID, what, m.Members())
		}
	}
}

func countState(ms []Member, s State) int {
	n := 0
	for _, m := range ms {
		if m.State == s {
			n++
		}
	}
	return n
}

func TestMembershipFormsInAnyOrderAndSeesLeave(t *testing.T) {
	// Node 3 starts first with seeds that are not up yet; 1 and 2 follow.
	start := func(id NodeID, seeds []string) *Membership {
		m, err := Join(Config{NodeID: id, GossipAddr: "127.0.0.1:0", Seeds: seeds, Local: true, JoinInterval: 50 * time.Millisecond,
			Meta: Meta{NodeID: id, APIAddr: "127.0.0.1:1" + id.String(), RaftAddr: "127.0.0.1:2" + id.String()}})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	m1 := start(1, nil)
	defer m1.Close()
	m3 := start(3, []string{m1.Addr()})
	defer m3.Close()
	m2 := start(2, []string{m3.Addr(), m1.Addr()})
	for _, m := range []*Membership{m1, m2, m3} {
		waitFor(t, m, "see 3 alive", func(ms []Member) bool { return countState(ms, Alive) == 3 })
	}
	ms := m1.Members()
	if ms[1].NodeID != 2 || ms[1].APIAddr != "127.0.0.1:12" || ms[1].RaftAddr != "127.0.0.1:22" {
		t.Fatalf("metadata not gossiped: %+v", ms[1])
	}
	if err := m2.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, m1, "see node 2 left", func(ms []Member) bool {
		for _, m := range ms {
			if m.NodeID == 2 {
				return m.State == Left
			}
		}
		return false
	})
}

func TestMetaLimit(t *testing.T) {
	long := make([]byte, 600)
	for i := range long {
		long[i] = 'a'
	}
	if _, err := encodeMeta(Meta{NodeID: 1, APIAddr: string(long)}); err == nil {
		t.Fatal("oversized metadata accepted")
	}
	if _, err := decodeMeta([]byte(`{"api":"x"}`)); err == nil {
		t.Fatal("metadata without id accepted")
	}
	// Listeners: six with ordinary names fit; too many say which flags
	// to shorten.
	m := Meta{NodeID: 1, APIAddr: "broker-1.example.com:9290", RaftAddr: "broker-1.example.com:9292", HTTPAddr: "broker-1.example.com:9291", Version: "v1.2.3", Listeners: map[string]string{}}
	for i := range 6 {
		m.Listeners[fmt.Sprintf("LISTENER_%d", i)] = fmt.Sprintf("broker-1.example.com:%d", 19290+i)
	}
	b, err := encodeMeta(m)
	if err != nil {
		t.Fatalf("six listeners: %v", err)
	}
	if back, err := decodeMeta(b); err != nil || len(back.Listeners) != 6 {
		t.Fatalf("decoded %+v, %v: want the six listeners back", back, err)
	}
	for i := 6; i < 12; i++ {
		m.Listeners[fmt.Sprintf("LISTENER_%d", i)] = fmt.Sprintf("broker-1.example.com:%d", 19290+i)
	}
	if _, err := encodeMeta(m); err == nil || !strings.Contains(err.Error(), "--advertised-listeners") {
		t.Fatalf("twelve listeners: got %v, want an error naming --advertised-listeners", err)
	}
}
