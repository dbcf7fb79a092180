package segment

import (
	"errors"
	"path/filepath"
	"reflect"
	"testing"
)

// TestRepairFrame: a flipped byte in a closed segment, in any frame
// (first, middle, last of the segment), is rewritten in place from an
// identical copy of its entry: the log verifies and reads as it was. An
// entry that does not fit (another index, another size) is refused and
// nothing is written; a sound frame is not "repaired".
func TestRepairFrame(t *testing.T) {
	dir, a, _ := crashLog(t)
	first := segmentPath(dir, 0) + logSuffix
	name := filepath.Base(first)
	ends := frameEnds(t, first)
	starts := append([]int64{fileHeaderSize}, ends[:len(ends)-1]...)
	for _, k := range []int{0, len(starts) / 2, len(starts) - 1} {
		d := t.TempDir()
		copyDir(t, dir, d)
		seg := filepath.Join(d, name)
		flip(t, seg, starts[k]+frameHeaderSize+5)
		l := mustOpen(t, d, testOptions())
		if _, err := l.DamagedFrame(name, starts[(k+1)%len(starts)]); err == nil {
			t.Fatal("DamagedFrame accepted a sound frame")
		}
		ref, err := l.DamagedFrame(name, starts[k])
		if err != nil {
			t.Fatalf("frame %d: %v", k, err)
		}
		e := a.entries[ref.Index-1]
		if e.Index != ref.Index || ref.Index != uint64(k+1) || ref.Offset != a.bases[k] {
			t.Fatalf("frame %d: ref index %d offset %d; want %d, %d", k, ref.Index, ref.Offset, k+1, a.bases[k])
		}
		other := a.entries[(k+1)%len(a.entries)]
		if err := l.RepairFrame(ref, other); !errors.Is(err, ErrRepairMismatch) {
			t.Fatalf("another entry: %v", err)
		}
		if err := l.Verify(); err == nil {
			t.Fatal("a refused repair changed the frame")
		}
		if err := l.RepairFrame(ref, e); err != nil {
			t.Fatalf("frame %d: %v", k, err)
		}
		if err := l.Verify(); err != nil {
			t.Fatalf("after the repair: %v", err)
		}
		if got, want := readAll(t, l), a.batches(0, 1<<62); !reflect.DeepEqual(got, want) {
			t.Fatalf("after the repair: %d batches, want %d", len(got), len(want))
		}
		l.Close()
	}
}
