package transport

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// A call to a peer marked unreachable waits for it to answer again, and
// the groups whose AppendEntries to it failed are nudged when it does.
func TestResumeWhenAPeerAnswersAgain(t *testing.T) {
	a, _ := pair(t, Options{})
	tr := mustTransport(t, a, "g")
	var nudged atomic.Int32
	tr.SetCatchUp(64, func() { nudged.Add(1) })
	other := mustTransport(t, a, "h") // no failure: not nudged
	var otherNudged atomic.Int32
	other.SetCatchUp(64, func() { otherNudged.Add(1) })

	const peer = raft.ServerAddress("127.0.0.1:1")
	a.unreachable(peer, errors.New("test: connection refused"))
	a.owe(peer, tr)

	waited := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		a.awaitReachable(peer, 10*time.Second, nil, nil)
		waited <- time.Since(start)
	}()
	select {
	case d := <-waited:
		t.Fatalf("awaitReachable returned after %s while the peer is unreachable", d)
	case <-time.After(50 * time.Millisecond):
	}
	a.reachable(peer, a.life(peer))
	if d := <-waited; d > 5*time.Second {
		t.Fatalf("awaitReachable returned %s after the peer answered", d)
	}
	if nudged.Load() != 1 || otherNudged.Load() != 0 {
		t.Fatalf("nudges: owed group %d (want 1), other group %d (want 0)", nudged.Load(), otherNudged.Load())
	}
	// Reachable peers are not waited for; a second return nudges no one.
	start := time.Now()
	a.awaitReachable(peer, 10*time.Second, nil, nil)
	if time.Since(start) > time.Second {
		t.Fatal("waited for a reachable peer")
	}
	a.unreachable(peer, errors.New("test: gone again"))
	a.reachable(peer, a.life(peer))
	if nudged.Load() != 1 {
		t.Fatalf("nudged %d times; a group is nudged once per failure", nudged.Load())
	}
}

// A pipelined request raft filled to MaxAppendEntries, acknowledged, asks
// the group for more at once; a partial one does not.
func TestFullPipelinedRequestAsksForMore(t *testing.T) {
	a, b := pair(t, Options{})
	ta := mustTransport(t, a, "g")
	serveRaft(t, mustTransport(t, b, "g"), ackAll)
	var nudged atomic.Int32
	ta.SetCatchUp(4, func() { nudged.Add(1) })
	p, err := ta.AppendEntriesPipeline("2", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, n := range []int{4, 2} {
		req := bigRequest(0, n, 10)
		if _, err := p.AppendEntries(req, new(raft.AppendEntriesResponse)); err != nil {
			t.Fatal(err)
		}
		if f := <-p.Consumer(); f.Error() != nil || !f.Response().Success {
			t.Fatalf("future: %v", f.Error())
		}
	}
	waitFor(t, 5*time.Second, "the nudge for the full request", func() bool { return nudged.Load() >= 1 })
	if n := nudged.Load(); n != 1 {
		t.Fatalf("nudged %d times for one full and one partial request", n)
	}
}
