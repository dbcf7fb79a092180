package replication

import (
	"bytes"
	"errors"
	"hash/crc32"
	"io"
	"testing"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"

	"github.com/stratalog/strata/pkg/segment"
)

// After a snapshot install, raft's idea of the log end may differ from the
// copy Replace fetched, both ways. These tests replay what raft then does.

func TestReplaceKeepsRaftsStaleEndAsPhantom(t *testing.T) {
	s := openStore(t, t.TempDir(), 16)
	// A divergent local log up to index 10, term 1.
	for i := uint64(1); i <= 10; i++ {
		if err := s.StoreLogs([]*raft.Log{cmd(t, i, 1, 1)}); err != nil {
			t.Fatal(err)
		}
	}
	// The leader's copy: indexes 4..7 of term 2, records from offset 30.
	err := s.Replace(func(reset func(int64) error, add func([]segment.Entry) error) error {
		if err := reset(30); err != nil {
			return err
		}
		for i := uint64(4); i <= 7; i++ {
			if err := add([]segment.Entry{{Index: i, Term: 2, Type: segment.EntryBatch, Data: testBatch(t, "c", 2, 10)}}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checkIndexes(t, s, 4, 7)
	if got := baseOffset(t, getLog(t, s, 4)); got != 30 {
		t.Fatalf("first copied batch at offset %d, want 30", got)
	}
	// raft still believes in 8..10: they read as term-0 no-ops, so raft
	// sees a conflict there and deletes them.
	if l := getLog(t, s, 9); l.Term != 0 || l.Type != raft.LogNoop {
		t.Fatalf("phantom entry 9: %+v", l)
	}
	if err := s.DeleteRange(8, 10); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	if err := s.GetLog(9, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("entry 9 after raft deleted it: %v", err)
	}
	// The next append continues the copy.
	if err := s.StoreLogs([]*raft.Log{cmd(t, 8, 3, 1)}); err != nil {
		t.Fatal(err)
	}
	if got := baseOffset(t, getLog(t, s, 8)); got != 38 {
		t.Fatalf("entry 8 at offset %d, want 38", got)
	}
}

func TestStoreLogsSkipsWhatTheCopyHolds(t *testing.T) {
	s := openStore(t, t.TempDir(), 16)
	for i := uint64(1); i <= 5; i++ {
		if err := s.StoreLogs([]*raft.Log{cmd(t, i, 1, 1)}); err != nil {
			t.Fatal(err)
		}
	}
	// raft (believing the log ends at 3) sends 4..7: 4 and 5 are held with
	// the same term and skipped, 6 and 7 appended.
	if err := s.StoreLogs([]*raft.Log{cmd(t, 4, 1, 1), cmd(t, 5, 1, 1), cmd(t, 6, 1, 1), cmd(t, 7, 1, 1)}); err != nil {
		t.Fatal(err)
	}
	checkIndexes(t, s, 1, 7)
	if got := baseOffset(t, getLog(t, s, 7)); got != 6 {
		t.Fatalf("entry 7 at offset %d, want 6", got)
	}
	// An entry held with another term cuts the log there.
	if err := s.StoreLogs([]*raft.Log{cmd(t, 6, 2, 1)}); err != nil {
		t.Fatal(err)
	}
	checkIndexes(t, s, 1, 6)
	if l := getLog(t, s, 6); l.Term != 2 {
		t.Fatalf("entry 6 has term %d after the conflict, want 2", l.Term)
	}
}

func TestControlCommandsApplyAndSurviveSnapshots(t *testing.T) {
	l, err := segment.Open(t.TempDir(), segment.Options{MaxSegmentBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s := NewLogStore(l, LogStoreOptions{SyncEachStore: true})
	logs := []*raft.Log{
		cmd(t, 1, 1, 10),
		{Index: 2, Term: 1, Type: raft.LogCommand, Data: control{kind: controlSetLogStart, a: 4}.encode()},
		{Index: 3, Term: 1, Type: raft.LogCommand, Data: control{kind: controlCompact, a: 8, b: 1234, c: 60000}.encode()},
		// Beyond the high watermark is clamped; backwards is ignored.
		{Index: 4, Term: 1, Type: raft.LogCommand, Data: control{kind: controlSetLogStart, a: 99}.encode()},
		{Index: 5, Term: 1, Type: raft.LogCommand, Data: control{kind: controlSetLogStart, a: 2}.encode()},
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if l.NextOffset() != 10 {
		t.Fatalf("control commands took offsets: log end %d, want 10", l.NextOffset())
	}
	// Stored as raft entries, read back as the same commands.
	if got := getLog(t, s, 2); got.Type != raft.LogCommand || !isControl(got.Data) {
		t.Fatalf("control entry read back as %+v", got)
	}
	f := newFSM(l, s, zap.NewNop())
	kicks := 0
	f.controlled = func() { kicks++ }
	var stored []*raft.Log
	for i := uint64(1); i <= 5; i++ {
		g := getLog(t, s, i)
		stored = append(stored, &g)
	}
	f.ApplyBatch(stored)
	if f.logStart.Load() != 10 || kicks != 1 {
		t.Fatalf("log start %d after the commands (want 10, clamped to the high watermark), %d kicks", f.logStart.Load(), kicks)
	}
	if c := f.compact.Load(); c == nil || *c != (CompactionTarget{UpTo: 8, NowMs: 1234, DeleteRetentionMs: 60000}) {
		t.Fatalf("compaction target %+v", c)
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	data := snap.(*fsmSnapshot).encode()
	g := newFSM(l, s, zap.NewNop())
	if err := g.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatal(err)
	}
	if g.logStart.Load() != 10 || g.compact.Load().UpTo != 8 || g.highWatermark() != 10 {
		t.Fatalf("restored: log start %d, target %+v, hwm %d", g.logStart.Load(), g.compact.Load(), g.highWatermark())
	}
	// Version 1 snapshots (28 bytes) still restore.
	old := (&fsmSnapshot{hwm: 10, applied: 5}).encode()
	v1 := append(append(old[:4:4], 1, 0, 0, 0), old[8:24]...)
	v1 = appendCRC(v1)
	if got, err := decodeSnapshot(v1); err != nil || got.hwm != 10 || got.applied != 5 {
		t.Fatalf("version 1 snapshot: %+v, %v", got, err)
	}
	for _, bad := range [][]byte{data[:20], append(bytes.Clone(data[:59]), 0), []byte("SCTL")} {
		if _, err := decodeSnapshot(bad); err == nil {
			t.Errorf("decoded a bad snapshot %x", bad)
		}
	}
	if _, err := decodeControl(control{kind: 9}.encode()); err == nil {
		t.Error("decoded a control command of unknown kind")
	}
}

func appendCRC(b []byte) []byte {
	var c [4]byte
	sum := crc32.Checksum(b, castagnoli)
	c[0], c[1], c[2], c[3] = byte(sum>>24), byte(sum>>16), byte(sum>>8), byte(sum)
	return append(b, c[:]...)
}
