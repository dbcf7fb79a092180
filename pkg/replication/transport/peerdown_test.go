package transport

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestPeerDown: when a peer's process is gone (its Mux closed: connections
// dropped and its port refusing), OnPeerDown names it; a peer cut off by
// Block is not reported.
func TestPeerDown(t *testing.T) {
	down := make(chan raft.ServerAddress, 4)
	ms := newMuxes(t, 3, Options{})
	a := ms[0]
	t.Cleanup(func() {
		for _, m := range ms {
			m.Close()
		}
	})
	a.opts.OnPeerDown = func(_ context.Context, p raft.ServerAddress) { down <- p }
	for _, m := range ms[1:] {
		serveRaft(t, mustTransport(t, m, "g"), ackAll)
	}
	ta := mustTransport(t, a, "g")
	var resp raft.AppendEntriesResponse
	for _, m := range ms[1:] {
		if err := ta.AppendEntries("x", m.Addr(), entry(1), &resp); err != nil {
			t.Fatal(err)
		}
	}

	a.Block(ms[2].Addr())
	ms[1].Close()
	select {
	case p := <-down:
		if p != ms[1].Addr() {
			t.Fatalf("OnPeerDown(%s), want %s (the closed peer)", p, ms[1].Addr())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a closed peer was not reported down")
	}
	select {
	case p := <-down:
		t.Fatalf("OnPeerDown(%s) again: a blocked peer is not down", p)
	case <-time.After(200 * time.Millisecond): // nothing more may come; bounded look
	}
}

// TestCampaign: a follower told to campaign starts an election (raft's
// TimeoutNow path) although its leader is alive.
func TestCampaign(t *testing.T) {
	c := newClusterOpts(t, 3, 1, fastTiming, Options{})
	defer c.close()
	c.waitLeaders(30 * time.Second)
	g := c.groups[0]
	old := c.leader(g, -1)
	follower := (old + 1) % 3
	term := c.rafts[g][follower].CurrentTerm()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.trans[g][follower].Campaign(ctx); err != nil {
		t.Fatal(err)
	}
	// It usually wins (its log is as long as anyone's); under load another
	// node may win the next term, so only the election is asserted.
	waitFor(t, 10*time.Second, "an election started by the follower, and a leader", func() bool {
		l := c.leader(g, -1)
		return l >= 0 && c.rafts[g][follower].CurrentTerm() > term && c.rafts[g][l].CurrentTerm() > term
	})
}
