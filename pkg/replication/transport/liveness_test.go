package transport

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestPulsesKeepPeersHeard: two brokers that watch each other and share no
// raft group still hear each other every interval; once one closes, the
// other's Heard stops moving.
func TestPulsesKeepPeersHeard(t *testing.T) {
	a, b := pair(t, Options{HeartbeatInterval: 20 * time.Millisecond})
	if !a.Heard(b.Addr()).IsZero() {
		t.Fatal("a heard b before any frame")
	}
	a.Watch(b.Addr(), a.Addr()) // its own address is ignored
	b.Watch(a.Addr())
	start := time.Now()
	waitFor(t, 5*time.Second, "a and b hear each other", func() bool {
		return a.Heard(b.Addr()).After(start) && b.Heard(a.Addr()).After(start)
	})
	// Still heard later: pulses go on with no group and no heartbeat.
	later := time.Now()
	waitFor(t, 5*time.Second, "a hears b again after a while", func() bool {
		return a.Heard(b.Addr()).After(later.Add(100 * time.Millisecond))
	})
	if !a.Heard(a.Addr()).IsZero() {
		t.Fatal("a pulsed itself")
	}

	b.Close()
	waitFor(t, 5*time.Second, "b's silence shows", func() bool {
		return time.Since(a.Heard(b.Addr())) > 300*time.Millisecond
	})
	last := a.Heard(b.Addr())
	waitFor(t, 5*time.Second, "200ms more of pulses to a closed peer", func() bool {
		return time.Since(last) > 500*time.Millisecond
	})
	if got := a.Heard(b.Addr()); !got.Equal(last) {
		t.Fatalf("a heard a closed peer at %v (last real frame %v)", got, last)
	}
}

// TestRequestVoteWaitsForTheGroup: a vote asked of a peer that opens the
// group a moment later is answered, not failed with ErrUnknownGroup.
func TestRequestVoteWaitsForTheGroup(t *testing.T) {
	a, b := pair(t, Options{})
	ta := mustTransport(t, a, "g")
	opened := make(chan struct{})
	go func() {
		defer close(opened)
		time.Sleep(300 * time.Millisecond) // the peer opens the group later: the point of the test, not a wait for a condition
		tb, err := b.Transport("g")
		if err != nil {
			t.Error(err)
			return
		}
		t.Cleanup(func() { tb.Close() })
		serveRaft(t, tb, ackAll)
	}()
	var resp raft.RequestVoteResponse
	err := ta.RequestVote("2", b.Addr(), &raft.RequestVoteRequest{Term: 3}, &resp)
	<-opened
	if err != nil || !resp.Granted || resp.Term != 3 {
		t.Fatalf("vote: granted=%v term=%d err=%v", resp.Granted, resp.Term, err)
	}
}
