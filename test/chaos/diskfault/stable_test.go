package diskfault

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stratalog/strata/pkg/replication"
)

// TestStableStoreOnAFullDisk: with its disk full, a broker must still store
// the terms and votes of new elections. hashicorp/raft panics when it
// cannot, so a broker whose disk filled exited at its next election (the
// fault suite's network scenario, seed 1796652842345400874). The stable
// store keeps a ballast file to give up then (replication/stable.go).
func TestStableStoreOnAFullDisk(t *testing.T) {
	vol, err := Mount(filepath.Join(t.TempDir(), "vol"), 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer vol.Close()
	st, err := replication.OpenStableStores(filepath.Join(vol.Dir(), "raft-stable.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := vol.Fill(); err != nil {
		t.Fatal(err)
	}
	if free, err := vol.Free(); err != nil || free > 64<<10 {
		t.Fatalf("volume not full: %d bytes free, %v", free, err)
	}
	// Enough groups that bbolt must grow its file (a new page) on the full
	// disk: 2,000 groups' terms, votes and key lists.
	for i := range 2000 {
		g := st.For(fmt.Sprintf("topic-%d/0", i))
		if err := g.SetUint64([]byte("CurrentTerm"), uint64(i+1)); err != nil {
			t.Fatalf("group %d: store its term on a full disk: %v", i, err)
		}
		if err := g.Set([]byte("LastVoteCand"), []byte("node-2")); err != nil {
			t.Fatalf("group %d: store its vote on a full disk: %v", i, err)
		}
	}
	if v, err := st.For("topic-1999/0").GetUint64([]byte("CurrentTerm")); err != nil || v != 2000 {
		t.Fatalf("read back: %d, %v", v, err)
	}
}
