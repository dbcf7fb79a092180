package segment

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzIndex decodes arbitrary .index bytes. Property: decoding never
// panics; what checkIndex accepts re-encodes to the same bytes, can be
// searched for any offset and index without panicking, and passes the
// quick check Open runs (the quick check never rejects a good index).
func FuzzIndex(f *testing.F) {
	f.Add(encodeIndex([]indexEntry{{0, 0, fileHeaderSize}}), int64(100))
	f.Add(encodeIndex([]indexEntry{{0, 0, fileHeaderSize}, {5, 3, 300}, {9, 7, 700}}), int64(1000))
	f.Add(encodeIndex([]indexEntry{{0, 0, fileHeaderSize}, {5, 3, 300}, {5, 2, 700}}), int64(1000))
	f.Add([]byte{1, 2, 3}, int64(10))
	f.Fuzz(func(t *testing.T, b []byte, logSize int64) {
		idx, err := decodeIndex(b)
		if err != nil {
			return
		}
		if checkIndex(idx, logSize) != nil {
			return
		}
		if got := encodeIndex(idx); !reflect.DeepEqual(got, b) {
			t.Fatal("re-encoding differs")
		}
		for _, rel := range []uint32{0, 1, idx[len(idx)-1].relOffset, 1<<32 - 1} {
			if e := lookupOffset(idx, rel); e.relOffset > rel && e != idx[0] {
				t.Fatalf("lookupOffset(%d) = %+v", rel, e)
			}
			if e := lookupIndex(idx, rel); e.relIndex > rel && e != idx[0] {
				t.Fatalf("lookupIndex(%d) = %+v", rel, e)
			}
		}
		dir := t.TempDir()
		p := filepath.Join(dir, "x")
		if err := os.WriteFile(p+indexSuffix, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p+timeIndexSuffix, encodeTimes([]timeEntry{{1, 0}}), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := quickCheckFiles(p, logSize, 0); err != nil {
			t.Fatalf("quick check rejects what the full check accepts: %v", err)
		}
	})
}

// FuzzRecover opens a log whose only segment holds a valid file header
// followed by arbitrary bytes. Property: Open never panics; everything it
// keeps passes Verify (every frame's CRC, contiguous indexes and offsets)
// and reads back; a reopen finds a clean tail and the same state.
func FuzzRecover(f *testing.F) {
	// Seeds: real frames written by the log, whole and cut.
	dir := f.TempDir()
	l := mustOpen(f, dir, testOptions())
	a := &appender{t: f, l: l}
	a.add("brb", 2, 5)
	a.add("b", 1, 6)
	l.Close()
	valid, err := os.ReadFile(segmentPath(dir, 0) + logSuffix)
	if err != nil {
		f.Fatal(err)
	}
	body := valid[fileHeaderSize:]
	f.Add(body)
	f.Add(body[:len(body)-3])
	// A compacted segment: batches with fewer records than offsets, some
	// empty.
	cdir := f.TempDir()
	m := newModel(f, 3, testOptions())
	m.l.Close()
	m.l, m.dir = mustOpen(f, cdir, testOptions()), cdir
	for i := 0; i < 30; i++ {
		m.appendRandom(3)
	}
	m.compact(m.next, m.ts, 0)
	m.l.Close()
	compacted, err := os.ReadFile(segmentPath(cdir, 0) + logSuffix)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(compacted[fileHeaderSize:])
	f.Add(body[:40])
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, tail []byte) {
		dir := t.TempDir()
		b := appendFileHeader(nil, 0, 1)
		if err := os.WriteFile(segmentPath(dir, 0)+logSuffix, append(b, tail...), 0o644); err != nil {
			t.Fatal(err)
		}
		o := testOptions()
		l, err := Open(dir, o)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Verify(); err != nil {
			t.Fatal(err)
		}
		for i := l.FirstIndex(); i != 0 && i <= l.LastIndex(); i++ {
			if _, err := l.ReadEntry(i); err != nil {
				t.Fatal(err)
			}
		}
		got := readAll(t, l)
		state := []any{l.Segments()[0].Size, l.NextOffset(), l.FirstIndex(), l.LastIndex()}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l, err = Open(dir, o)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if r := l.RecoveryReport(); r != nil {
			t.Fatalf("reopen reported %v", r)
		}
		if again := []any{l.Segments()[0].Size, l.NextOffset(), l.FirstIndex(), l.LastIndex()}; !reflect.DeepEqual(state, again) {
			t.Fatalf("reopen: %v, then %v", state, again)
		}
		if !reflect.DeepEqual(readAll(t, l), got) {
			t.Fatal("reopen reads differently")
		}
	})
}
