package replication

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestPartitionMove adds a fourth replica with an empty directory as a
// non-voter, lets it catch up, promotes it and removes an old replica.
func TestPartitionMove(t *testing.T) {
	c := newCluster(t, 3)
	acks := applyMany(t, c, "a", 100, 8, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	n4 := c.addNode("n4")
	c.open(n4, nil)
	l := c.leader()
	if err := l.g.AddNonvoter(ctx, n4.id, n4.addr); err != nil {
		t.Fatal(err)
	}
	c.converge(l.g.HighWatermark())
	if err := l.g.AddVoter(ctx, n4.id, n4.addr); err != nil {
		t.Fatal(err)
	}
	var old *node
	for _, nd := range c.nodes[:3] {
		if nd != l {
			old = nd
			break
		}
	}
	if err := l.g.RemoveServer(ctx, old.id); err != nil {
		t.Fatal(err)
	}
	c.stop(old)
	merge(acks, applyMany(t, c, "b", 100, 8, 2))

	servers, err := c.leader().g.Configuration()
	if err != nil {
		t.Fatal(err)
	}
	voters := map[raft.ServerID]bool{}
	for _, s := range servers {
		if s.Suffrage == raft.Voter {
			voters[s.ID] = true
		}
	}
	if len(servers) != 3 || !voters[n4.id] || voters[old.id] {
		t.Fatalf("configuration after the move: %+v", servers)
	}
	hwm := c.leader().g.HighWatermark()
	c.converge(hwm)
	checkAcked(t, values(t, c.sameLogs(hwm)), acks)
	if n := n4.g.Status().SnapshotInstalls; n != 0 {
		t.Fatalf("the new replica was sent %d snapshots", n)
	}
}

func TestTransferLeadership(t *testing.T) {
	c := newCluster(t, 3)
	applyMany(t, c, "a", 20, 4, 1)
	l := c.leader()
	var to *node
	for _, nd := range c.nodes {
		if nd != l {
			to = nd
		}
	}
	changes := make(chan bool, 8)
	l.g.OnLeaderChange(func(v bool) { changes <- v })
	gained := make(chan bool, 8)
	to.g.OnLeaderChange(func(v bool) { gained <- v })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.g.TransferLeadership(ctx, to.id, to.addr); err != nil {
		t.Fatal(err)
	}
	if got := c.leader(); got != to {
		t.Fatalf("leader is %s after a transfer to %s", got.id, to.id)
	}
	for ch, want := range map[chan bool]bool{changes: false, gained: true} {
		select {
		case v := <-ch:
			if v != want {
				t.Fatalf("leadership callback got %v, want %v", v, want)
			}
		case <-ctx.Done():
			t.Fatal("no leadership callback")
		}
	}
	st := to.g.Status()
	if st.State != raft.Leader || st.LeaderID != to.id || st.Term < 2 {
		t.Fatalf("status of the new leader: %+v", st)
	}
	// Apply works at the new leader; the old one points to it.
	applyMany(t, c, "b", 20, 4, 1)
	if err := l.g.TransferLeadership(ctx, "", ""); err == nil {
		t.Fatal("a follower transferred leadership")
	}
}

func TestStableStores(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	s, err := OpenStableStores(path)
	if err != nil {
		t.Fatal(err)
	}
	a, b := s.For("t/0"), s.For("t/1")
	if err := a.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	if err := a.Set([]byte("LastVoteCand"), []byte("n2")); err != nil {
		t.Fatal(err)
	}
	if err := b.SetUint64([]byte("CurrentTerm"), 3); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get([]byte("LastVoteCand")); err == nil || err.Error() != "not found" {
		t.Fatalf("missing key: %v (raft looks for \"not found\")", err)
	}
	s.Close()

	s, err = OpenStableStores(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, b = s.For("t/0"), s.For("t/1")
	if v, err := a.GetUint64([]byte("CurrentTerm")); v != 7 || err != nil {
		t.Fatalf("t/0 term after reopen: %d, %v", v, err)
	}
	if v, err := b.GetUint64([]byte("CurrentTerm")); v != 3 || err != nil {
		t.Fatalf("t/1 term after reopen: %d, %v", v, err)
	}
	if err := s.Delete("t/0"); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"CurrentTerm", "LastVoteCand"} {
		if _, err := a.Get([]byte(k)); err == nil || err.Error() != "not found" {
			t.Fatalf("%s after Delete: %v", k, err)
		}
	}
	if v, err := b.GetUint64([]byte("CurrentTerm")); v != 3 || err != nil {
		t.Fatalf("Delete of t/0 touched t/1: %d, %v", v, err)
	}
	if err := a.SetUint64([]byte("CurrentTerm"), 1); err != nil {
		t.Fatal(err)
	}
	if v, err := a.GetUint64([]byte("CurrentTerm")); v != 1 || err != nil {
		t.Fatalf("t/0 after re-creation: %d, %v", v, err)
	}
}
