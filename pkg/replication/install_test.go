package replication

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

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

func TestFailedReplace(t *testing.T) {
	fill := func(t *testing.T, s *LogStore) {
		t.Helper()
		for i := uint64(1); i <= 10; i++ {
			if err := s.StoreLogs([]*raft.Log{cmd(t, i, 1, 1)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	fetchErr := errors.New("fetch failed")

	t.Run("before the copy starts", func(t *testing.T) {
		s := openStore(t, t.TempDir(), 16)
		fill(t, s)
		err := s.Replace(func(func(int64) error, func([]segment.Entry) error) error { return fetchErr })
		if !errors.Is(err, fetchErr) {
			t.Fatalf("Replace: %v", err)
		}
		// Nothing was replaced: raft's idea of the log still fits it.
		checkIndexes(t, s, 1, 10)
		if n := s.Log().NextOffset(); n != 10 {
			t.Fatalf("log end %d, want 10", n)
		}
		if err := s.StoreLogs([]*raft.Log{cmd(t, 11, 1, 1)}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("part-way", func(t *testing.T) {
		s := openStore(t, t.TempDir(), 16)
		fill(t, s)
		err := s.Replace(func(reset func(int64) error, add func([]segment.Entry) error) error {
			if err := reset(30); err != nil {
				return err
			}
			if err := add([]segment.Entry{{Index: 20, Term: 2, Type: segment.EntryBatch, Data: testBatch(t, "c", 2, 10)}}); err != nil {
				return err
			}
			return fetchErr
		})
		if !errors.Is(err, fetchErr) {
			t.Fatalf("Replace: %v", err)
		}
		checkIndexes(t, s, 0, 0)
		// raft still believes in 1..10 and checks an append after 10
		// against its cached last term: the emptied log must not take 11
		// as its first entry, which would acknowledge 11 without 1..10.
		if err := s.StoreLogs([]*raft.Log{cmd(t, 11, 1, 1)}); !errors.Is(err, errLogEmptied) {
			t.Fatalf("StoreLogs(11) on the emptied log: %v", err)
		}
		checkIndexes(t, s, 0, 0)
		// Its old entries read as term-0 no-ops: raft finds them in conflict
		// with a leader sending the log from index 1, deletes them, and
		// stores the leader's entries with the offsets every replica gives.
		if l := getLog(t, s, 5); l.Term != 0 || l.Type != raft.LogNoop {
			t.Fatalf("old entry 5 after the failed install: %+v", l)
		}
		if err := s.DeleteRange(1, 10); err != nil {
			t.Fatal(err)
		}
		if err := s.StoreLogs([]*raft.Log{cmd(t, 1, 1, 3), cmd(t, 2, 1, 1)}); err != nil {
			t.Fatal(err)
		}
		checkIndexes(t, s, 1, 2)
		if got := baseOffset(t, getLog(t, s, 2)); got != 3 {
			t.Fatalf("entry 2 at offset %d, want 3", got)
		}
	})

	t.Run("then a new install", func(t *testing.T) {
		s := openStore(t, t.TempDir(), 16)
		fill(t, s)
		s.Replace(func(reset func(int64) error, _ func([]segment.Entry) error) error {
			if err := reset(30); err != nil {
				return err
			}
			return fetchErr
		})
		err := s.Replace(func(reset func(int64) error, add func([]segment.Entry) error) error {
			if err := reset(30); err != nil {
				return err
			}
			return add([]segment.Entry{{Index: 20, Term: 2, Type: segment.EntryBatch, Data: testBatch(t, "c", 2, 10)}})
		})
		if err != nil {
			t.Fatal(err)
		}
		// The copy is the log again: appends continue it.
		if err := s.StoreLogs([]*raft.Log{cmd(t, 21, 2, 1)}); err != nil {
			t.Fatal(err)
		}
		checkIndexes(t, s, 20, 21)
		if got := baseOffset(t, getLog(t, s, 21)); got != 32 {
			t.Fatalf("entry 21 at offset %d, want 32", got)
		}
	})
}

// A snapshot install whose log fetch fails (the leader is unreachable over
// the internal API, or the stream breaks part-way) must leave a log that
// raft's idea of it still fits. raft keeps its in-memory last index L and
// term across a failed Restore, and its follower check of an
// AppendEntries whose PrevLogEntry is L compares that in-memory term
// without reading the store. A failed fetch used to leave the log empty:
// the next leader's AppendEntries(PrevLogEntry L, entries L+1..) passed
// that check, the empty segment log took L+1 as its first entry, and the
// replica acknowledged entries with none of the log below them. The
// leader then counted them as held, its high watermark stayed above the
// replica's log end, and nothing ever resent them. Now the copy goes to a
// staging directory (logcopy.go) and the log is replaced only once the
// copy is whole, so a failed fetch leaves the log as it was; each retry
// resumes the copy, and the part-way case here finishes it a few entries
// per attempt.
func TestFailedInstallFetchIsNotAcknowledged(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after int // chunks of one entry the fetch gets before it fails
	}{{"fetch fails at once", 0}, {"fetch fails part-way", 2}} {
		t.Run(tc.name, func(t *testing.T) { failedInstallRun(t, tc.after) })
	}
}

func failedInstallRun(t *testing.T, after int) {
	// Interval fsync: the replicas stop cleanly, and per-append fsyncs
	// would only load the disk for the tests that follow.
	c := &cluster{t: t, logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), segBytes: 2048}
	c.start(3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	produce := func(tag string, n int) {
		t.Helper()
		for i := range n {
			if _, _, err := c.apply(ctx, testBatch(t, fmt.Sprintf("%s%d", tag, i), 2, 100)); err != nil {
				t.Fatal(err)
			}
		}
	}
	produce("a", 20)
	lead := c.leader()
	var keeper, lagger *node // the follower that keeps the whole log, the one that falls behind
	for _, nd := range c.nodes {
		switch {
		case nd == lead:
		case lagger == nil:
			lagger = nd
		default:
			keeper = nd
		}
	}
	c.converge(lead.g.HighWatermark())
	// The lagger stops idle, with a snapshot at its last entry: restarted,
	// raft on it has applied everything it holds.
	waitFor(t, 10*time.Second, "the lagger to apply its whole log", func() bool {
		st := lagger.g.Status()
		return st.AppliedIndex == st.LastIndex
	})
	last, err := lagger.g.snapshot(ctx)
	if err != nil || last != lagger.g.Log().LastIndex() {
		t.Fatalf("lagger snapshot at %d (%v), last index %d", last, err, lagger.g.Log().LastIndex())
	}
	c.stop(lagger)

	// The leader alone deletes the log the lagger needs; the keeper keeps
	// it, so that it can later replicate from the lagger's last index.
	produce("b", 60)
	if _, err := lead.g.SetLogStart(ctx, lead.g.HighWatermark()); err != nil {
		t.Fatal(err)
	}
	if _, err := lead.g.DeleteSegments(ctx); err != nil {
		t.Fatal(err)
	}
	if first := lead.g.Log().FirstIndex(); first <= last+1 {
		t.Fatalf("the leader's log still starts at %d, the lagger needs %d", first, last+1)
	}
	hwm := lead.g.HighWatermark()

	// The leader installs a snapshot on the returning lagger; the fetch of
	// its log fails.
	c.failLogReads(after)
	c.restart(lagger)
	waitFor(t, 10*time.Second, "a failed snapshot install on the lagger", func() bool {
		return lagger.g.Status().SnapshotInstalls >= 2
	})
	// The keeper, which still holds the lagger's last entry, takes over, and
	// fetches work again: nothing prevents a repair now.
	if err := lead.g.TransferLeadership(ctx, keeper.id, keeper.addr); err != nil {
		t.Fatal(err)
	}
	c.failLogReads(-1)
	deadline := time.Now().Add(15 * time.Second)
	for {
		var states string
		same := true
		for _, nd := range c.open_() {
			st := nd.g.Status()
			states += fmt.Sprintf(" %s:(%s, indexes %d..%d, log end %d, high watermark %d)",
				nd.id, st.State, nd.g.Log().FirstIndex(), st.LastIndex, st.LogEndOffset, st.HighWatermark)
			same = same && st.HighWatermark == hwm && st.LogEndOffset == hwm
		}
		if same {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replicas did not reach log end and high watermark %d within 15s:%s", hwm, states)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A replica that crashed while an install was copying the leader's log
// starts with an empty log and no snapshot (prepareStart), so raft replays
// its log from index 1 whenever the leader still holds it. The emptied log
// must then continue at offset 0, not at the base of the partial copy.
func TestRestartAfterInterruptedInstall(t *testing.T) {
	c := &cluster{t: t, logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))}
	c.start(3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range 10 {
		if _, _, err := c.apply(ctx, testBatch(t, fmt.Sprint("a", i), 2, 100)); err != nil {
			t.Fatal(err)
		}
	}
	var follower *node
	for _, nd := range c.open_() {
		if !nd.g.IsLeader() {
			follower = nd
		}
	}
	c.stop(follower)
	// What a crash leaves: the install marker and the start of a copy of a
	// log that begins at offset 154.
	dir := filepath.Join(follower.dir, "topic-0")
	l, err := segment.Open(dir, segment.Options{MaxSegmentBytes: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Reset(154); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(segment.Entry{Index: 90, Term: 1, Type: segment.EntryBatch, Data: testBatch(t, "copy", 2, 100)}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, installMarker), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c.restart(follower)
	hwm := c.leader().g.HighWatermark()
	c.converge(hwm)
	if st := follower.g.Status(); st.LogEndOffset != hwm {
		t.Fatalf("restarted replica: log end %d, high watermark %d; leader's high watermark %d", st.LogEndOffset, st.HighWatermark, hwm)
	}
	c.sameLogs(hwm)
}

// A snapshot whose last entry is not the log's entry at that index (an
// install that failed after raft stored the leader's snapshot, over a log
// that differs from the leader's there) does not survive a restart.
func TestPrepareStartDropsASnapshotOfAnotherLog(t *testing.T) {
	dir := t.TempDir()
	l, err := segment.Open(dir, segment.Options{MaxSegmentBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s := NewLogStore(l, LogStoreOptions{SyncEachStore: true})
	for i := uint64(1); i <= 5; i++ {
		if err := s.StoreLogs([]*raft.Log{cmd(t, i, 1, 1)}); err != nil {
			t.Fatal(err)
		}
	}
	snaps, err := raft.NewFileSnapshotStore(dir, 2, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	take := func(index, term uint64) string {
		sink, err := snaps.Create(raft.SnapshotVersionMax, index, term, raft.Configuration{}, 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := (&fsmSnapshot{hwm: 3, applied: index}).Persist(sink); err != nil {
			t.Fatal(err)
		}
		return sink.ID()
	}
	ours := take(4, 1)
	theirs := take(5, 2) // the leader's: its entry 5 has term 2, ours term 1
	if err := prepareStart(dir, l, snaps, false, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	metas, err := snaps.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(metas) != 1 || metas[0].ID != ours {
		t.Fatalf("snapshots after prepareStart: %+v; want only %s (not %s)", metas, ours, theirs)
	}
	checkIndexes(t, s, 1, 5)
}
