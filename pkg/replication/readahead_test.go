package replication

import (
	"bytes"
	"testing"

	"github.com/hashicorp/raft"
)

// TestReadAheadFollowsRewrites: GetLog in index order below the cache is
// served from a read-ahead window, and a window read before the log was
// truncated and rewritten never serves the old entries.
func TestReadAheadFollowsRewrites(t *testing.T) {
	s := openStore(t, t.TempDir(), 0)
	var logs []*raft.Log
	for i := uint64(1); i <= 30; i++ {
		logs = append(logs, cmd(t, i, 1, 1))
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 10; i++ {
		if got := getLog(t, s, i); got.Index != i || got.Term != 1 || !bytes.Equal(got.Data, logs[i-1].Data) {
			t.Fatalf("entry %d came back as index %d term %d", i, got.Index, got.Term)
		}
	}
	if len(s.ahead.entries) == 0 {
		t.Fatal("reads in order left no read-ahead window")
	}
	// A new leader's entries replace 11..30 with other ones.
	if err := s.DeleteRange(11, 30); err != nil {
		t.Fatal(err)
	}
	var again []*raft.Log
	for i := uint64(11); i <= 20; i++ {
		again = append(again, cmd(t, i, 2, 3))
	}
	if err := s.StoreLogs(again); err != nil {
		t.Fatal(err)
	}
	for i := uint64(11); i <= 20; i++ {
		if got := getLog(t, s, i); got.Term != 2 || !bytes.Equal(got.Data, again[i-11].Data) {
			t.Fatalf("entry %d after the rewrite came back with term %d (the old entry)", i, got.Term)
		}
	}
	if err := s.GetLog(21, &raft.Log{}); err == nil {
		t.Fatal("GetLog(21) after the truncation found an entry")
	}
}
