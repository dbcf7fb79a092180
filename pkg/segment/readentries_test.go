package segment

import (
	"bytes"
	"testing"
)

// TestReadEntries: ReadEntries from any index returns the entries ReadEntry
// returns, consecutive, at least one, within one segment and maxBytes (the
// last one may cross it); a truncation counts as a rewrite, an append does
// not.
func TestReadEntries(t *testing.T) {
	l := mustOpen(t, t.TempDir(), testOptions())
	defer l.Close()
	a := &appender{t: t, l: l}
	for i := range 60 {
		a.add("bbrb"[:1+i%4], 1+i%3, 1_700_000_000_000)
	}
	segs := l.Segments()
	if len(segs) < 3 {
		t.Fatalf("%d segments, want several", len(segs))
	}
	segEnd := func(index uint64) uint64 {
		for _, s := range segs {
			if index >= s.BaseIndex && index <= s.LastIndex {
				return s.LastIndex
			}
		}
		t.Fatalf("no segment holds %d", index)
		return 0
	}
	for _, maxBytes := range []int{1, 300, 1 << 20} {
		for _, want := range a.entries {
			got, _, err := l.ReadEntries(want.Index, maxBytes)
			if err != nil {
				t.Fatalf("ReadEntries(%d, %d): %v", want.Index, maxBytes, err)
			}
			size := 0
			for i, e := range got {
				m := a.entries[want.Index-1+uint64(i)]
				if e.Index != m.Index || e.Term != m.Term || e.Type != m.Type || !bytes.Equal(e.Data, m.Data) {
					t.Fatalf("ReadEntries(%d, %d)[%d] = index %d term %d, want entry %d term %d", want.Index, maxBytes, i, e.Index, e.Term, m.Index, m.Term)
				}
				if i > 0 && size >= maxBytes {
					t.Fatalf("ReadEntries(%d, %d) went on past %d bytes", want.Index, maxBytes, size)
				}
				size += len(e.Data)
			}
			last := got[len(got)-1].Index
			if last > segEnd(want.Index) {
				t.Fatalf("ReadEntries(%d, %d) crossed into the next segment: up to %d", want.Index, maxBytes, last)
			}
			if maxBytes == 1<<20 && last != segEnd(want.Index) {
				t.Fatalf("ReadEntries(%d, %d) stopped at %d before its segment's end %d", want.Index, maxBytes, last, segEnd(want.Index))
			}
		}
	}
	if _, _, err := l.ReadEntries(a.next(), 1); err == nil {
		t.Fatal("ReadEntries past the end: no error")
	}

	r0 := l.Rewrites()
	a.add("b", 1, 1_700_000_000_000)
	if r := l.Rewrites(); r != r0 {
		t.Fatalf("an append changed the rewrite count from %d to %d", r0, r)
	}
	if err := l.TruncateSuffix(a.next() - 5); err != nil {
		t.Fatal(err)
	}
	_, r, err := l.ReadEntries(1, 1)
	if err != nil || r == r0 {
		t.Fatalf("after a truncation, rewrite count %d (%v), was %d", r, err, r0)
	}
}
