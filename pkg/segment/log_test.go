package segment

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestAppendReadRoundTrip(t *testing.T) {
	l := mustOpen(t, t.TempDir(), testOptions())
	defer l.Close()
	a := &appender{t: t, l: l}
	if got, err := l.Read(0, 0, 100); got != nil || err != nil {
		t.Fatalf("empty log Read = %v, %v", got, err)
	}
	if l.FirstIndex() != 0 || l.LastIndex() != 0 || l.NextOffset() != 0 {
		t.Fatalf("empty log: %d %d %d", l.FirstIndex(), l.LastIndex(), l.NextOffset())
	}
	bases := a.add("bbrb", 5, 1000)
	if want := []int64{0, 5, 10, 10}; !reflect.DeepEqual(bases, want) {
		t.Fatalf("bases %v, want %v", bases, want)
	}
	for i := 0; i < 20; i++ {
		a.add("b", 1+i%4, int64(2000+i))
	}
	next := l.NextOffset()
	if l.FirstIndex() != 1 || l.LastIndex() != 24 {
		t.Fatalf("index range %d..%d", l.FirstIndex(), l.LastIndex())
	}
	if len(l.Segments()) < 2 {
		t.Fatalf("want several segments, got %d", len(l.Segments()))
	}

	// Every offset, every maxBytes, a few high watermarks.
	for off := int64(0); off < next; off++ {
		for _, maxOff := range []int64{off + 1, off + 7, next} {
			for _, maxBytes := range []int{0, 1, 300, 1000, 1 << 20} {
				got, err := l.Read(off, maxOff, maxBytes)
				if err != nil {
					t.Fatalf("Read(%d,%d,%d): %v", off, maxOff, maxBytes, err)
				}
				bs := splitBatches(t, got)
				want := a.batches(0, maxOff)
				for len(want) > 0 {
					h := baseOf(t, want[0])
					if next := a.nextAfter(h); next > off {
						break
					}
					want = want[1:]
				}
				if len(bs) == 0 || len(bs) > len(want) {
					t.Fatalf("Read(%d,%d,%d): %d batches of %d", off, maxOff, maxBytes, len(bs), len(want))
				}
				total := 0
				for i, b := range bs {
					if !bytes.Equal(b, want[i]) {
						t.Fatalf("Read(%d,%d,%d): batch %d differs", off, maxOff, maxBytes, i)
					}
					total += len(b)
				}
				if len(bs) > 1 && total > maxBytes {
					t.Fatalf("Read(%d,%d,%d): %d bytes", off, maxOff, maxBytes, total)
				}
				if len(bs) < len(want) && total+len(want[len(bs)]) <= maxBytes {
					t.Fatalf("Read(%d,%d,%d): stopped early at %d bytes", off, maxOff, maxBytes, total)
				}
			}
		}
	}
	if got, err := l.Read(next, next+10, 100); got != nil || err != nil {
		t.Fatalf("Read(next) = %v, %v", got, err)
	}
	if got, err := l.Read(3, 3, 100); got != nil || err != nil {
		t.Fatalf("Read(hw) = %v, %v", got, err)
	}
	_, err := l.Read(next+1, next+10, 100)
	var oor *OutOfRangeError
	if !errors.As(err, &oor) || !errors.Is(err, ErrOffsetOutOfRange) || *oor != (OutOfRangeError{next + 1, 0, next}) {
		t.Fatalf("Read(next+1): %v", err)
	}
	if err := l.Verify(); err != nil {
		t.Fatal(err)
	}
}

// nextAfter is the offset after the batch with base offset base.
func (a *appender) nextAfter(base int64) int64 {
	for i, e := range a.entries {
		if e.Type == EntryBatch && a.bases[i] == base {
			return base + int64(len(splitRecords(e.Data)))
		}
	}
	return base
}

func splitRecords(b []byte) []struct{} {
	n := int(int32(uint32(b[57])<<24 | uint32(b[58])<<16 | uint32(b[59])<<8 | uint32(b[60])))
	return make([]struct{}, n)
}

func TestReadEntryAndRaftEntries(t *testing.T) {
	l := mustOpen(t, t.TempDir(), testOptions())
	defer l.Close()
	a := &appender{t: t, l: l}
	for i := 0; i < 30; i++ {
		a.add("rbr", 3, int64(i))
	}
	for _, e := range a.entries {
		got, err := l.ReadEntry(e.Index)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, e) {
			t.Fatalf("ReadEntry(%d) = %+v, want %+v", e.Index, got, e)
		}
	}
	for _, idx := range []uint64{0, 91} {
		if _, err := l.ReadEntry(idx); !errors.Is(err, ErrIndexNotFound) {
			t.Fatalf("ReadEntry(%d): %v", idx, err)
		}
	}
	// Raft entries are invisible to Read.
	got := readAll(t, l)
	if want := a.batches(0, 1<<62); !reflect.DeepEqual(got, want) {
		t.Fatalf("readAll: %d batches, want %d", len(got), len(want))
	}
	if l.NextOffset() != 90 {
		t.Fatalf("NextOffset %d", l.NextOffset())
	}
}

func TestAppendRejects(t *testing.T) {
	l := mustOpen(t, t.TempDir(), testOptions())
	defer l.Close()
	good := batch(t, 2, 0, 10)
	for name, es := range map[string][]Entry{
		"zero index":  {{Index: 0, Type: EntryRaft}},
		"gap":         {{Index: 1, Type: EntryRaft}, {Index: 3, Type: EntryRaft}},
		"bad type":    {{Index: 1, Type: 9}},
		"short batch": {{Index: 1, Type: EntryBatch, Data: good[:40]}},
		"long batch":  {{Index: 1, Type: EntryBatch, Data: append(append([]byte(nil), good...), 0)}},
	} {
		if _, err := l.Append(es...); !errors.Is(err, ErrInvalidEntry) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := l.Append(Entry{Index: 7, Type: EntryBatch, Data: good}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(Entry{Index: 7, Type: EntryRaft}); !errors.Is(err, ErrInvalidEntry) {
		t.Fatalf("repeated index: %v", err)
	}
	if l.FirstIndex() != 7 || l.LastIndex() != 7 || l.NextOffset() != 2 {
		t.Fatalf("state %d %d %d", l.FirstIndex(), l.LastIndex(), l.NextOffset())
	}
}

func TestRollBySizeAndAge(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	o := testOptions()
	o.MaxSegmentBytes = 1 << 20
	o.MaxSegmentAge = time.Minute
	o.Clock = clock.Now
	l := mustOpen(t, t.TempDir(), o)
	defer l.Close()
	a := &appender{t: t, l: l}
	a.add("b", 1, 0)
	clock.now = clock.now.Add(59 * time.Second)
	a.add("b", 1, 0)
	if n := len(l.Segments()); n != 1 {
		t.Fatalf("%d segments before the age limit", n)
	}
	clock.now = clock.now.Add(time.Second)
	a.add("b", 1, 0)
	segs := l.Segments()
	if len(segs) != 2 || segs[1].BaseOffset != 2 || !segs[1].Created.Equal(clock.now) {
		t.Fatalf("after age roll: %+v", segs)
	}

	// By size: a segment never exceeds MaxSegmentBytes unless one append
	// alone does.
	o = testOptions()
	l2 := mustOpen(t, t.TempDir(), o)
	defer l2.Close()
	a2 := &appender{t: t, l: l2}
	for i := 0; i < 100; i++ {
		a2.add("b", 2, int64(i))
	}
	a2.add("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", 2, 7) // > 4096 bytes at once
	segs = l2.Segments()
	for i, s := range segs[:len(segs)-1] {
		if s.Size > o.MaxSegmentBytes {
			t.Fatalf("segment %d: %d bytes", i, s.Size)
		}
		if s.NextOffset != segs[i+1].BaseOffset || s.LastIndex+1 != segs[i+1].BaseIndex {
			t.Fatalf("segments %d, %d not contiguous: %+v %+v", i, i+1, s, segs[i+1])
		}
	}
	if last := segs[len(segs)-1]; last.Size <= o.MaxSegmentBytes || last.BaseIndex != 101 {
		t.Fatalf("large append: %+v", last)
	}
	if got := readAll(t, l2); !reflect.DeepEqual(got, a2.batches(0, 1<<62)) {
		t.Fatal("readAll differs")
	}
}

func TestRollNoOp(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, testOptions())
	defer l.Close()
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	a := &appender{t: t, l: l}
	a.add("rr", 0, 0)
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	if n := len(l.Segments()); n != 1 {
		t.Fatalf("roll of a raft-only segment: %d segments", n)
	}
	a.add("b", 3, 0)
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	a.add("b", 3, 0)
	segs := l.Segments()
	if len(segs) != 2 || segs[1].BaseOffset != 3 || segs[1].BaseIndex != 4 {
		t.Fatalf("segments %+v", segs)
	}
	for _, suf := range []string{indexSuffix, timeIndexSuffix} {
		if _, err := os.Stat(filepath.Join(dir, "00000000000000000000"+suf)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOffsetForTimestamp(t *testing.T) {
	l := mustOpen(t, t.TempDir(), testOptions())
	defer l.Close()
	a := &appender{t: t, l: l}
	// Batch i has 2 records with timestamps 100*i, 100*i+1; batch 7 goes
	// back in time (max 50).
	var bases []int64
	for i := 0; i < 40; i++ {
		ts := int64(100 * i)
		if i == 7 {
			ts = 49
		}
		bases = append(bases, a.add("rb", 2, ts)[1])
	}
	next := l.NextOffset()
	cases := []struct {
		ts, maxOffset, want int64
		found               bool
	}{
		{0, next, 0, true},
		{1, next, 0, true},
		{2, next, bases[1], true},
		{101, next, bases[1], true},
		{650, next, bases[7+1], true},
		{3901, next, bases[39], true},
		{3902, next, 0, false},
		{3901, bases[39], 0, false},
		{2000, bases[20] + 1, bases[20], true},
	}
	for _, c := range cases {
		got, found, err := l.OffsetForTimestamp(c.ts, c.maxOffset)
		if err != nil || found != c.found || (found && got != c.want) {
			t.Errorf("OffsetForTimestamp(%d, %d) = %d, %v, %v; want %d, %v", c.ts, c.maxOffset, got, found, err, c.want, c.found)
		}
	}
	// Reopened, closed segments answer from their index files.
	l.Close()
	l = mustOpen(t, l.dir, testOptions())
	defer l.Close()
	for _, c := range cases {
		got, found, err := l.OffsetForTimestamp(c.ts, c.maxOffset)
		if err != nil || found != c.found || (found && got != c.want) {
			t.Errorf("reopened: OffsetForTimestamp(%d, %d) = %d, %v, %v; want %d, %v", c.ts, c.maxOffset, got, found, err, c.want, c.found)
		}
	}
	// Below the start offset: never below it.
	if err := l.TruncatePrefix(bases[3] + 1); err != nil {
		t.Fatal(err)
	}
	if got, found, _ := l.OffsetForTimestamp(0, next); !found || got != bases[3]+1 {
		t.Fatalf("after TruncatePrefix: %d %v", got, found)
	}
}

func TestTruncateSuffix(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, testOptions())
	a := &appender{t: t, l: l}
	for i := 0; i < 60; i++ {
		a.add("br", 3, int64(i))
	}
	if len(l.Segments()) < 4 {
		t.Fatalf("want several segments, got %d", len(l.Segments()))
	}
	check := func(l *Log) {
		t.Helper()
		if err := l.Verify(); err != nil {
			t.Fatal(err)
		}
		want := a.batches(0, 1<<62)
		if got := readAll(t, l); !reflect.DeepEqual(got, want) {
			t.Fatalf("readAll: %d batches, want %d", len(got), len(want))
		}
		if l.LastIndex() != a.entries[len(a.entries)-1].Index {
			t.Fatalf("LastIndex %d", l.LastIndex())
		}
		for _, e := range a.entries {
			got, err := l.ReadEntry(e.Index)
			if err != nil || !reflect.DeepEqual(got, e) {
				t.Fatalf("ReadEntry(%d): %v", e.Index, err)
			}
		}
	}
	// Cut inside an older segment, in the middle of it.
	segs := l.Segments()
	cut := (segs[1].BaseIndex + segs[1].LastIndex) / 2
	if err := l.TruncateSuffix(cut); err != nil {
		t.Fatal(err)
	}
	a.truncate(cut)
	if n := len(l.Segments()); n != 2 {
		t.Fatalf("%d segments after truncation", n)
	}
	wantNext := a.bases[len(a.bases)-1]
	if a.entries[len(a.entries)-1].Type == EntryBatch {
		wantNext += 3
	}
	if l.NextOffset() != wantNext {
		t.Fatalf("NextOffset %d, want %d", l.NextOffset(), wantNext)
	}
	check(l)
	// Appends continue with the right offsets and indexes, across rolls.
	for i := 0; i < 30; i++ {
		if b := a.add("b", 2, 7); b[0] != wantNext {
			t.Fatalf("base %d, want %d", b[0], wantNext)
		}
		wantNext += 2
	}
	check(l)
	// Cut exactly at a segment boundary.
	segs = l.Segments()
	if err := l.TruncateSuffix(segs[2].LastIndex); err != nil {
		t.Fatal(err)
	}
	a.truncate(segs[2].LastIndex)
	check(l)
	// Reopen: same state.
	before := l.Segments()
	l.Close()
	l = mustOpen(t, dir, testOptions())
	check(l)
	after := l.Segments()
	for i := range before {
		before[i].Created, after[i].Created = time.Time{}, time.Time{}
	}
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("reopen:\n%+v\n%+v", before, after)
	}
	// Cut everything: the log is empty and continues at the same offset.
	next := l.NextOffset()
	if err := l.TruncateSuffix(0); err != nil {
		t.Fatal(err)
	}
	if l.FirstIndex() != 0 || l.LastIndex() != 0 || l.NextOffset() != 0 || len(l.Segments()) != 0 {
		t.Fatalf("after TruncateSuffix(0): %d %d %d (was %d)", l.FirstIndex(), l.LastIndex(), l.NextOffset(), next)
	}
	if _, err := l.Append(Entry{Index: 500, Type: EntryBatch, Data: batch(t, 1, 0, 1)}); err != nil {
		t.Fatal(err)
	}
	if l.FirstIndex() != 500 || l.NextOffset() != 1 {
		t.Fatalf("after re-append: %d %d", l.FirstIndex(), l.NextOffset())
	}
	l.Close()
}

func TestTruncatePrefix(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, testOptions())
	a := &appender{t: t, l: l}
	for i := 0; i < 60; i++ {
		a.add("b", 3, int64(i))
	}
	segs := l.Segments()
	before := segs[2].BaseOffset + 1 // inside the third segment
	if err := l.TruncatePrefix(before); err != nil {
		t.Fatal(err)
	}
	if l.StartOffset() != before || l.Segments()[0].BaseOffset != segs[2].BaseOffset {
		t.Fatalf("start %d, first segment %+v", l.StartOffset(), l.Segments()[0])
	}
	if _, err := os.Stat(segmentPath(dir, segs[1].BaseOffset) + logSuffix); !os.IsNotExist(err) {
		t.Fatalf("dropped segment still there: %v", err)
	}
	_, err := l.Read(before-1, l.NextOffset(), 100)
	var oor *OutOfRangeError
	if !errors.As(err, &oor) || oor.Start != before || oor.End != l.NextOffset() {
		t.Fatalf("Read below start: %v", err)
	}
	// The batch holding the start offset is returned whole.
	got, err := l.Read(before, l.NextOffset(), 1)
	if err != nil || baseOf(t, got) != before-1 {
		t.Fatalf("Read(start): %v", err)
	}
	if err := l.TruncatePrefix(before - 1); err != nil || l.StartOffset() != before {
		t.Fatalf("lower TruncatePrefix: %v, start %d", err, l.StartOffset())
	}
	if err := l.TruncatePrefix(l.NextOffset() + 1); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("TruncatePrefix above next: %v", err)
	}
	// Everything but the active segment.
	next := l.NextOffset()
	if err := l.TruncatePrefix(next); err != nil {
		t.Fatal(err)
	}
	if n := len(l.Segments()); n != 1 || l.StartOffset() != next {
		t.Fatalf("%d segments, start %d", n, l.StartOffset())
	}
	if got, err := l.Read(next, next, 100); got != nil || err != nil {
		t.Fatalf("Read at start=next: %v %v", got, err)
	}
	l.Close()
	l = mustOpen(t, dir, testOptions())
	if l.StartOffset() != next || l.NextOffset() != next {
		t.Fatalf("reopen: start %d next %d, want %d", l.StartOffset(), l.NextOffset(), next)
	}
	a.l = l
	if b := a.add("b", 1, 0); b[0] != next {
		t.Fatalf("append after reopen at %d", b[0])
	}
	l.Close()

	// An empty log with a start offset begins its first segment there.
	dir2 := t.TempDir()
	if err := writeStartFile(dir2, 42); err != nil {
		t.Fatal(err)
	}
	l2 := mustOpen(t, dir2, testOptions())
	defer l2.Close()
	if b, err := l2.Append(Entry{Index: 1, Type: EntryBatch, Data: batch(t, 1, 0, 1)}); err != nil || b[0] != 42 {
		t.Fatalf("first append: %v %v", b, err)
	}
}

func TestReopenIdentical(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, testOptions())
	a := &appender{t: t, l: l}
	for i := 0; i < 50; i++ {
		a.add("brb", 2, int64(i*10))
	}
	want := readAll(t, l)
	segsBefore := l.Segments()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Read(0, 1, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	if _, err := l.Append(Entry{Index: 1000, Type: EntryRaft}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	l = mustOpen(t, dir, testOptions())
	defer l.Close()
	if l.RecoveryReport() != nil {
		t.Fatalf("clean reopen reported %v", l.RecoveryReport())
	}
	if got := readAll(t, l); !reflect.DeepEqual(got, want) {
		t.Fatal("batches differ after reopen")
	}
	segs := l.Segments()
	for i := range segs {
		segs[i].Created, segsBefore[i].Created = time.Time{}, time.Time{}
	}
	if !reflect.DeepEqual(segs, segsBefore) {
		t.Fatalf("segments differ:\n%+v\n%+v", segs, segsBefore)
	}
	if l.FirstIndex() != 1 || l.LastIndex() != 150 || l.Size() == 0 {
		t.Fatalf("index range %d..%d", l.FirstIndex(), l.LastIndex())
	}
}

// TestEmptyRecoveredSegment: a last segment cut back to its header keeps
// its base offset; an empty log's next append may take any raft index,
// and the header is rewritten with it.
func TestEmptyRecoveredSegment(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(segmentPath(dir, 7)+logSuffix, append(appendFileHeader(nil, 7, 1), 1, 2, 3), 0o644); err != nil {
		t.Fatal(err)
	}
	l := mustOpen(t, dir, testOptions())
	if l.RecoveryReport() == nil || l.FirstIndex() != 0 || l.NextOffset() != 7 || l.StartOffset() != 7 {
		t.Fatalf("report %v, first %d, next %d, start %d", l.RecoveryReport(), l.FirstIndex(), l.NextOffset(), l.StartOffset())
	}
	if b, err := l.Append(Entry{Index: 10, Term: 2, Type: EntryBatch, Data: batch(t, 2, 0, 1)}); err != nil || b[0] != 7 {
		t.Fatalf("append: %v %v", b, err)
	}
	l.Close()
	l = mustOpen(t, dir, testOptions())
	defer l.Close()
	if l.RecoveryReport() != nil || l.FirstIndex() != 10 || l.LastIndex() != 10 || l.NextOffset() != 9 {
		t.Fatalf("reopen: %v %d %d %d", l.RecoveryReport(), l.FirstIndex(), l.LastIndex(), l.NextOffset())
	}
	if e, err := l.ReadEntry(10); err != nil || e.Term != 2 {
		t.Fatalf("ReadEntry: %+v %v", e, err)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{
		{MaxSegmentBytes: 10},
		{MaxSegmentBytes: 1 << 33},
		{MaxSegmentAge: -time.Second},
		{IndexIntervalBytes: -1},
	} {
		if _, err := Open(t.TempDir(), o); err == nil {
			t.Errorf("Open accepted %+v", o)
		}
	}
}

// TestRolledThenReopened: the last segment, even if rolled, is the one
// Open scans and appends continue in.
func TestRolledThenReopened(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, testOptions())
	a := &appender{t: t, l: l}
	a.add("bb", 2, 0)
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = mustOpen(t, dir, testOptions())
	defer l.Close()
	a.l = l
	a.add("b", 2, 0)
	if segs := l.Segments(); len(segs) != 1 || segs[0].NextOffset != 6 || segs[0].LastIndex != 3 {
		t.Fatalf("segments %+v", segs)
	}
	if err := l.Verify(); err != nil {
		t.Fatal(err)
	}
}
