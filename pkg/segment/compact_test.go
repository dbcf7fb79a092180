package segment

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/stratalog/strata/pkg/record"
)

var compactSeed = flag.Int64("compact.seed", 0, "seed of TestCompactRandomOps (0 = several fixed seeds)")

// TestCompactRandomOps drives random sequences of appends, compactions
// (UpTo anywhere in the log, tombstones expiring or not), rolls, reopens,
// prefix truncations and suffix truncations (above every UpTo used, the
// caller's duty) against the model, checking the whole log after each
// step. A failure prints its seed; -compact.seed replays it.
func TestCompactRandomOps(t *testing.T) {
	seeds := []int64{1, 2, 3, 4, 5, 6, 7, 8}
	if *compactSeed != 0 {
		seeds = []int64{*compactSeed}
	} else if testing.Short() {
		seeds = seeds[:2]
	}
	for _, seed := range seeds {
		t.Run("", func(t *testing.T) {
			t.Logf("seed %d (replay: go test -run TestCompactRandomOps -compact.seed %d)", seed, seed)
			runCompactOps(t, seed, 80)
		})
	}
}

// FuzzCompactOps is TestCompactRandomOps with the fuzzer choosing seeds.
// Property: the log always equals the model.
func FuzzCompactOps(f *testing.F) {
	f.Add(int64(42))
	f.Fuzz(func(t *testing.T, seed int64) { runCompactOps(t, seed, 30) })
}

func runCompactOps(t *testing.T, seed int64, steps int) {
	m := newModel(t, seed, testOptions())
	defer func() { m.l.Close() }()
	for i := 0; i < steps; i++ {
		switch p := m.rng.Intn(100); {
		case p < 45:
			m.appendRandom(1 + m.rng.Intn(8))
		case p < 70:
			if m.next > m.start {
				upTo := m.start + m.rng.Int63n(m.next-m.start+5)
				m.compact(upTo, m.ts-int64(m.rng.Intn(300)), time.Duration(m.rng.Intn(200))*time.Millisecond)
			}
		case p < 78:
			if err := m.l.Roll(); err != nil {
				t.Fatal(err)
			}
		case p < 86:
			m.reopen()
		case p < 93:
			if m.next > m.start {
				m.truncatePrefix(m.start + m.rng.Int63n(m.next-m.start+1))
			}
		default:
			m.truncateSuffix()
		}
		m.check()
	}
	// And everything compacted at the end: only the latest of each key is
	// left in the closed segments.
	if err := m.l.Roll(); err != nil {
		t.Fatal(err)
	}
	m.compact(m.next, m.ts, time.Hour)
	m.check()
	m.reopen()
	m.check()
	// The offline check finds nothing wrong with what the writer, the
	// cleaner and recovery left (no false alarms).
	checkClean(t, m.dir, m.opts.IndexIntervalBytes)
}

// TestCompactLatestKept: after compacting a log of many overwrites, every
// key's latest value is there at its original offset, and nothing else is
// (everything closed); the batches keep their offset ranges.
func TestCompactLatestKept(t *testing.T) {
	m := newModel(t, 99, testOptions())
	defer m.l.Close()
	for i := 0; i < 60; i++ {
		m.appendRandom(3)
	}
	if err := m.l.Roll(); err != nil {
		t.Fatal(err)
	}
	before := batchRanges(t, m.l)
	latest := map[string]mrec{}
	for _, e := range m.entries {
		for _, r := range e.recs {
			if r.key != nil && !e.control {
				latest[string(r.key)] = r
			}
		}
	}
	st := m.compact(m.next, 0, 0) // no tombstone expires at time 0
	m.check()
	if st.SegmentsRewritten == 0 || st.BytesReclaimed <= 0 || st.RecordsRemoved == 0 {
		t.Fatalf("stats %+v", st)
	}
	if after := batchRanges(t, m.l); !reflect.DeepEqual(before, after) {
		t.Fatal("batch offset ranges changed")
	}
	seen := map[string]bool{}
	for _, e := range m.entries {
		for _, r := range e.recs {
			if r.key == nil || e.control {
				continue
			}
			if seen[string(r.key)] {
				t.Fatalf("key %s kept twice", r.key)
			}
			seen[string(r.key)] = true
			if w := latest[string(r.key)]; w.off != r.off {
				t.Fatalf("key %s kept at %d, latest at %d", r.key, r.off, w.off)
			}
		}
	}
	if len(seen) != len(latest) {
		t.Fatalf("%d keys kept, %d written", len(seen), len(latest))
	}
	// Reading at any offset, removed or not, starts with the batch that
	// covers it, as in Kafka.
	for off := m.l.StartOffset(); off < m.next; off++ {
		b, err := m.l.Read(off, m.next, 1)
		if err != nil {
			t.Fatal(err)
		}
		h, err := record.ParseHeader(b)
		if err != nil || h.BaseOffset > off || h.NextOffset() <= off {
			t.Fatalf("Read(%d) starts with batch [%d, %d): %v", off, h.BaseOffset, h.NextOffset(), err)
		}
	}
}

// batchRanges lists every batch's [base, next) by raft index.
func batchRanges(t testing.TB, l *Log) map[uint64][2]int64 {
	out := map[uint64][2]int64{}
	for i := l.FirstIndex(); i != 0 && i <= l.LastIndex(); i++ {
		e, err := l.ReadEntry(i)
		if err != nil {
			t.Fatal(err)
		}
		if e.Type == EntryBatch {
			h, _ := checkBatch(e.Data)
			out[i] = [2]int64{h.BaseOffset, h.NextOffset()}
		}
	}
	return out
}

// TestCompactTombstoneExpiry: a tombstone goes only once it is the latest
// for its key and its batch's max timestamp is below Now-DeleteRetention
// (the boundary itself keeps it); a superseded tombstone goes at once.
func TestCompactTombstoneExpiry(t *testing.T) {
	m := newModel(t, 1, testOptions())
	defer m.l.Close()
	add := func(ts int64, recs ...mrec) {
		idx := m.l.LastIndex() + 1
		b := kvBatch(t, recs, ts, 0)
		bases, err := m.l.Append(Entry{Index: idx, Term: 1, Type: EntryBatch, Data: b})
		if err != nil {
			t.Fatal(err)
		}
		for i := range recs {
			recs[i].off = bases[0] + int64(i)
		}
		m.entries = append(m.entries, mentry{index: idx, term: 1, typ: EntryBatch, base: bases[0], lod: int32(len(recs) - 1), maxTs: ts + int64(len(recs)) - 1, recs: recs})
		m.next = bases[0] + int64(len(recs))
	}
	add(1000, mrec{key: []byte("a"), value: []byte("1")}, mrec{key: []byte("b"), value: []byte("1")})
	add(1000, mrec{key: []byte("a")}) // the latest for a: tombstone, max ts 1000
	add(1000, mrec{key: []byte("b")}) // superseded below
	add(1000, mrec{key: []byte("b"), value: []byte("2")})
	if err := m.l.Roll(); err != nil {
		t.Fatal(err)
	}
	add(1000, mrec{key: []byte("c")}) // active: never removed
	retention := 100 * time.Millisecond
	st := m.compact(m.next, 1100, retention) // horizon 1000: not below it
	m.check()
	if st.TombstonesRemoved != 1 || st.RecordsRemoved != 3 {
		t.Fatalf("at the boundary: %+v", st)
	}
	st = m.compact(m.next, 1101, retention)
	m.check()
	if st.TombstonesRemoved != 1 || st.RecordsRemoved != 1 || st.BatchesEmptied != 1 {
		t.Fatalf("past the boundary: %+v", st)
	}
}

// TestCompactUpToAndActive: records at or above UpTo, and the active
// segment, are untouched however superseded.
func TestCompactUpToAndActive(t *testing.T) {
	m := newModel(t, 5, testOptions())
	defer m.l.Close()
	for i := 0; i < 40; i++ {
		m.appendRandom(3)
	}
	segs := m.l.Segments()
	if !segs[len(segs)-1].Active || len(segs) < 4 {
		t.Fatalf("want several segments and an active one: %+v", segs)
	}
	activeBefore := readFile(t, segmentPath(m.dir, segs[len(segs)-1].BaseOffset)+logSuffix)
	upTo := segs[2].BaseOffset + 3
	tail := map[uint64][]byte{}
	for _, e := range m.entries {
		if e.typ == EntryBatch && e.base >= upTo {
			got, _ := m.l.ReadEntry(e.index)
			tail[e.index] = got.Data
		}
	}
	m.compact(upTo, m.ts, 0)
	m.check()
	for idx, data := range tail {
		if got, _ := m.l.ReadEntry(idx); !reflect.DeepEqual(got.Data, data) {
			t.Fatalf("entry %d at or above UpTo changed", idx)
		}
	}
	m.compact(m.next, m.ts, 0)
	m.check()
	if got := readFile(t, segmentPath(m.dir, segs[len(segs)-1].BaseOffset)+logSuffix); !reflect.DeepEqual(got, activeBefore) {
		t.Fatal("the active segment changed")
	}
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dirFiles reads every file of dir.
func dirFiles(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range ents {
		out[e.Name()] = readFile(t, filepath.Join(dir, e.Name()))
	}
	return out
}

// TestCompactIdempotent: a second run with the same options writes
// nothing and leaves every file as it was; CleanedUpTo and DirtyBytes
// follow the runs.
func TestCompactIdempotent(t *testing.T) {
	m := newModel(t, 11, testOptions())
	defer m.l.Close()
	for i := 0; i < 50; i++ {
		m.appendRandom(3)
	}
	if dirty, total := m.l.DirtyBytes(); dirty != total || total == 0 || m.l.CleanedUpTo() != 0 {
		t.Fatalf("before any run: dirty %d of %d, cleaned up to %d", dirty, total, m.l.CleanedUpTo())
	}
	now := m.ts
	st := m.compact(m.next, now, time.Millisecond)
	segs := m.l.Segments()
	if active := segs[len(segs)-1]; st.CleanedUpTo != active.BaseOffset || m.l.CleanedUpTo() != active.BaseOffset {
		t.Fatalf("cleaned up to %d, want the active base %d", st.CleanedUpTo, active.BaseOffset)
	}
	if dirty, total := m.l.DirtyBytes(); dirty != 0 || total == 0 {
		t.Fatalf("after a run: dirty %d of %d", dirty, total)
	}
	files := dirFiles(t, m.dir)
	st = m.compact(m.next, now, time.Millisecond)
	if st.SegmentsRewritten != 0 || st.BytesWritten != 0 || st.RecordsRemoved != 0 {
		t.Fatalf("second run: %+v", st)
	}
	if again := dirFiles(t, m.dir); !reflect.DeepEqual(files, again) {
		t.Fatal("second run changed files")
	}
	m.reopen()
	m.check()
	if m.l.CleanedUpTo() != st.CleanedUpTo {
		t.Fatalf("reopened: cleaned up to %d, want %d", m.l.CleanedUpTo(), st.CleanedUpTo)
	}
	for i := 0; i < 20; i++ {
		m.appendRandom(3)
	}
	if dirty, _ := m.l.DirtyBytes(); dirty == 0 {
		t.Fatal("new closed segments are not dirty")
	}
}

// TestCompactCancel: cancelling ctx (here from the throttle, mid-segment)
// stops the run with ctx's error, leaves no temporary file, and the log
// still equals the model (segments swapped before stay compacted; the
// model, run afterwards to completion, agrees).
func TestCompactCancel(t *testing.T) {
	for _, after := range []int{1, 2, 4, 8} {
		m := newModel(t, int64(after), testOptions())
		for i := 0; i < 50; i++ {
			m.appendRandom(3)
		}
		ctx, cancel := context.WithCancel(context.Background())
		calls, throttled := 0, 0
		_, err := m.l.Compact(ctx, CompactOptions{UpTo: m.next, Now: m.ts, Throttle: func(ctx context.Context, n int) error {
			if n > ThrottleChunk {
				t.Fatalf("throttle asked for %d bytes", n)
			}
			throttled += n
			if calls++; calls == after {
				cancel()
			}
			return ctx.Err()
		}})
		if err != context.Canceled {
			t.Fatalf("cancelled after %d throttle calls: %v", after, err)
		}
		checkNoTemp(t, m.dir)
		m.interrupted = true
		m.compact(m.next, m.ts, 0)
		m.check()
		m.l.Close()
	}
}

func checkNoTemp(t testing.TB, dir string) {
	t.Helper()
	for name := range dirFiles(t, dir) {
		if filepath.Ext(name) == cleanedSuffix || filepath.Ext(name) == ".swap" {
			t.Fatalf("temporary file %s left", name)
		}
	}
}

// TestCompactThrottle: Throttle sees every byte read and written.
func TestCompactThrottle(t *testing.T) {
	m := newModel(t, 3, testOptions())
	defer m.l.Close()
	for i := 0; i < 50; i++ {
		m.appendRandom(3)
	}
	total := 0
	st, err := m.l.Compact(context.Background(), CompactOptions{UpTo: m.next, Throttle: func(_ context.Context, n int) error {
		total += n
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	// Index files are written in one piece each, outside the throttle.
	if int64(total) > st.BytesRead+st.BytesWritten || int64(total) < st.BytesRead {
		t.Fatalf("throttled %d bytes; read %d, wrote %d", total, st.BytesRead, st.BytesWritten)
	}
}
