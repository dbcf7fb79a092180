package replication

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"
)

// merge adds b's entries to a.
func merge(a, b map[string]int64) map[string]int64 {
	for k, v := range b {
		a[k] = v
	}
	return a
}

func TestLeaderKill(t *testing.T) {
	c := newCluster(t, 3)
	acks := applyMany(t, c, "before", 200, 16, 2)
	old := c.leader()
	c.stop(old)
	nl := c.leader()
	if nl == old {
		t.Fatal("the closed replica still leads")
	}
	merge(acks, applyMany(t, c, "after", 200, 16, 2))
	hwm := nl.g.HighWatermark()
	if hwm != 800 {
		t.Fatalf("high watermark %d, want 800", hwm)
	}
	c.restart(old)
	c.converge(hwm)
	checkAcked(t, values(t, c.sameLogs(hwm)), acks)
	if n := old.g.Status().SnapshotInstalls; n != 0 {
		t.Fatalf("the restarted replica was sent %d snapshots", n)
	}
}

func TestLeaderIsolation(t *testing.T) {
	c := newCluster(t, 3)
	acks := applyMany(t, c, "before", 50, 8, 1)
	old := c.leader()
	c.converge(old.g.HighWatermark())
	c.isolate(old)
	lastBefore := old.g.Log().LastIndex()

	// The isolated leader takes the entry into its log but cannot commit
	// it: the answer is NotLeader or indeterminate, never success.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _, err := old.g.Apply(ctx, [][]byte{testBatch(t, "lost", 1, 1)})
	var nle *NotLeaderError
	if !errors.Is(err, ErrIndeterminate) && !errors.As(err, &nle) {
		t.Fatalf("Apply on an isolated leader: %v", err)
	}
	if old.g.Log().LastIndex() <= lastBefore {
		t.Fatal("the isolated leader did not store the entry; the test proves nothing")
	}

	// The other two elect a leader and commit.
	var rest []*node
	for _, nd := range c.nodes {
		if nd != old {
			rest = append(rest, nd)
		}
	}
	waitFor(t, 10*time.Second, "a new leader among the other two", func() bool {
		return rest[0].g.IsLeader() || rest[1].g.IsLeader()
	})
	waitFor(t, 10*time.Second, "the old leader to step down", func() bool { return !old.g.IsLeader() })
	merge(acks, applyMany(t, c, "after", 50, 8, 1))

	// Healed: the old leader's uncommitted tail is replaced.
	c.connect(old)
	nl := c.leader()
	hwm := nl.g.HighWatermark()
	c.converge(hwm)
	waitFor(t, 10*time.Second, "identical raft logs", func() bool {
		return old.g.Log().LastIndex() == nl.g.Log().LastIndex() && old.g.Log().NextOffset() == hwm
	})
	log := values(t, c.sameLogs(hwm))
	checkAcked(t, log, acks)
	if _, ok := log["lost-0"]; ok {
		t.Fatal("the uncommitted entry of the isolated leader survived")
	}
	if len(log) != 100 {
		t.Fatalf("%d records, want 100", len(log))
	}
}

func TestFollowerCatchesUpFromLog(t *testing.T) {
	c := newCluster(t, 3)
	acks := applyMany(t, c, "a", 50, 8, 1)
	l := c.leader()
	var f *node
	for _, nd := range c.nodes {
		if nd != l {
			f = nd
			break
		}
	}
	c.stop(f)
	merge(acks, applyMany(t, c, "b", 500, 16, 1))
	// The leader snapshotted meanwhile (threshold 64), and raft asked to
	// compact its log; the log kept everything.
	waitFor(t, 10*time.Second, "a leader snapshot", func() bool {
		n, _ := strconv.Atoi(c.leader().g.raft.Stats()["last_snapshot_index"])
		return n > 64
	})
	l = c.leader()
	if first := l.g.Log().FirstIndex(); first != 1 {
		t.Fatalf("leader's first raft index %d after compaction, want 1", first)
	}
	c.restart(f)
	hwm := l.g.HighWatermark()
	c.converge(hwm)
	checkAcked(t, values(t, c.sameLogs(hwm)), acks)
	for _, nd := range c.nodes {
		if n := nd.g.Status().SnapshotInstalls; n != 0 {
			t.Fatalf("%s was sent %d snapshots", nd.id, n)
		}
	}
}
