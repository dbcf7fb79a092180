package replication

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// A hand-over to a target that cannot take over (cut off, as a broker that
// was killed but is still called alive by gossip) is abandoned after its
// time, and the leader leads again at once instead of refusing writes
// until raft's own transfer timeout (3 s here; twenty heartbeat timeouts
// in a broker).
func TestHandOverToAnUnreachableTargetIsAbandoned(t *testing.T) {
	c := newCampaignCluster(t)
	l := c.leader(t)
	target := (l + 1) % 3
	for i, m := range c.muxes {
		if i != target {
			m.Block(c.muxes[target].Addr())
			c.muxes[target].Block(m.Addr())
		}
	}
	// An entry the target lacks: raft's transfer must first send it.
	if err := c.rafts[l].Apply([]byte("x"), 5*time.Second).Error(); err != nil {
		t.Fatal(err)
	}

	const within = 300 * time.Millisecond
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := c.successor(l).handOver(ctx, raft.ServerID(c.successor(target).Self), c.muxes[target].Addr(), within, nil, zap.NewNop())
	if !errors.Is(err, ErrHandOverAbandoned) {
		t.Fatalf("hand-over to a cut-off target: %v, want ErrHandOverAbandoned", err)
	}
	// Writes resume well before raft's transfer timeout (3 s) would have
	// let them.
	var took time.Duration
	waitFor(t, 10*time.Second, "a write accepted after the abandoned hand-over", func() bool {
		for i, r := range c.rafts {
			if i != target && r.State() == raft.Leader && r.Apply([]byte("y"), time.Second).Error() == nil {
				took = time.Since(start)
				return true
			}
		}
		return false
	})
	if took > 2*time.Second {
		t.Fatalf("writes resumed %s after the hand-over began; raft alone would take its 3 s transfer timeout", took)
	}
	t.Logf("writes resumed %s after the hand-over began (abandoned after %s)", took, within)
}

// A hand-over to a live, caught-up target completes.
func TestHandOverToALiveTarget(t *testing.T) {
	c := newCampaignCluster(t)
	l := c.leader(t)
	target := (l + 1) % 3
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.successor(l).handOver(ctx, c.successor(target).Self, c.muxes[target].Addr(), 2*time.Second, nil, zap.NewNop()); err != nil {
		t.Fatalf("hand-over to a live target: %v", err)
	}
	waitFor(t, 10*time.Second, "the target to lead", func() bool { return c.rafts[target].State() == raft.Leader })
}
