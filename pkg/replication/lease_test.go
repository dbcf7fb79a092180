package replication

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// TestReadLeaseEndsBeforeRaftNotices: a leader cut off from its voters,
// which then elect another, stops answering reads within its read lease,
// while its raft still calls it leader (raft's own lease here is ten times
// longer). The new leader answers.
func TestReadLeaseEndsBeforeRaftNotices(t *testing.T) {
	const readLease = 200 * time.Millisecond
	c := &cluster{t: t, logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), fsync: true, lease: readLease}
	c.raftConf = func() *raft.Config {
		rc := testRaftConfig()
		rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = 2*time.Second, 2*time.Second, 2*time.Second
		return rc
	}
	c.start(3)
	old := c.leader()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := old.g.ReadLease(ctx); err != nil {
		t.Fatalf("the leader has no read lease: %v", err)
	}
	var rest []*node
	for _, nd := range c.nodes {
		if nd != old {
			rest = append(rest, nd)
		}
	}

	// Cut off; the others elect one of them at once (raft's TimeoutNow,
	// as the broker's elector does).
	c.isolate(old)
	cut := time.Now()
	var tr raft.TimeoutNowResponse
	if err := rest[1].trans.TimeoutNow(rest[0].id, rest[0].addr, &raft.TimeoutNowRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax}}, &tr); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a new leader among the other two", func() bool {
		return rest[0].g.IsLeader() || rest[1].g.IsLeader()
	})

	var refused time.Time
	waitFor(t, 10*time.Second, "the cut-off leader refusing reads", func() bool {
		rctx, rcancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer rcancel()
		err := old.g.ReadLease(rctx)
		if err == nil {
			return false
		}
		if !errors.Is(err, ErrNoLease) && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("ReadLease on a cut-off leader: %v, want ErrNoLease or a wait", err)
		}
		refused = time.Now()
		return true
	})
	if !old.g.IsLeader() {
		t.Fatal("raft already deposed the cut-off leader: the test shows nothing about the read lease")
	}
	if d := refused.Sub(cut); d > readLease+300*time.Millisecond {
		t.Errorf("reads refused %s after the cut, want within the read lease (%s) and some slack", d, readLease)
	}
	t.Logf("reads refused %s after the cut; raft still calls the old replica leader", refused.Sub(cut).Round(time.Millisecond))

	nl := rest[0]
	if !nl.g.IsLeader() {
		nl = rest[1]
	}
	if err := nl.g.ReadLease(ctx); err != nil {
		t.Fatalf("the new leader has no read lease: %v", err)
	}
	if err := rest[0].g.ReadLease(ctx); nl != rest[0] && err == nil {
		t.Fatal("a follower holds a read lease")
	}
}

// TestApplyRenewsReadLease: a committed entry is evidence of leadership, so
// a partition written to needs no verification to be read.
func TestApplyRenewsReadLease(t *testing.T) {
	c := &cluster{t: t, logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), fsync: true, lease: time.Hour}
	c.start(3)
	l := c.leader()
	l.g.lease.mu.Lock()
	l.g.lease.until = time.Now() // lapsed, as after an idle hour
	l.g.lease.mu.Unlock()
	if left := l.g.leaseLeft(time.Now()); left > 0 {
		t.Fatalf("lease left after lapsing it: %s", left)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := l.g.Apply(ctx, [][]byte{testBatch(t, "x", 1, 1)}); err != nil {
		t.Fatal(err)
	}
	if left := l.g.leaseLeft(time.Now()); left < 59*time.Minute {
		t.Fatalf("lease left after a commit: %s, want about the whole hour", left)
	}
}

// TestCloseDoesNotWaitForVerification: a leader cut off from its voters
// cannot confirm its leadership; a verification in flight must not hold
// Close (which waits for calls in flight) until it times out.
func TestCloseDoesNotWaitForVerification(t *testing.T) {
	const readLease = 2 * time.Second // a verification waits up to three of these
	c := &cluster{t: t, logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), fsync: true, lease: readLease}
	c.raftConf = func() *raft.Config {
		rc := testRaftConfig()
		rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = 10*time.Second, 10*time.Second, 10*time.Second
		return rc
	}
	// Start the three, and elect n1 at once rather than after raft's long
	// timeouts.
	var servers []raft.Server
	for _, id := range []string{"n1", "n2", "n3"} {
		nd := c.addNode(id)
		servers = append(servers, raft.Server{ID: nd.id, Address: nd.addr, Suffrage: raft.Voter})
	}
	for _, nd := range c.nodes {
		c.open(nd, servers)
	}
	t.Cleanup(c.close)
	var tr raft.TimeoutNowResponse
	if err := c.nodes[1].trans.TimeoutNow(c.nodes[0].id, c.nodes[0].addr, &raft.TimeoutNowRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax}}, &tr); err != nil {
		t.Fatal(err)
	}
	l := c.leader()
	c.isolate(l)
	l.g.lease.mu.Lock()
	l.g.lease.until = time.Now() // lapsed
	l.g.lease.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := l.g.ReadLease(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ReadLease on a cut-off leader: %v, want to wait for a verification that cannot finish", err)
	}
	start := time.Now()
	c.stop(l)
	if took := time.Since(start); took > readLease {
		t.Fatalf("Close took %s with a verification in flight", took)
	}
}
