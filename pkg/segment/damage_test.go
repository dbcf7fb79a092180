package segment

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDamageBelowTail: a flipped byte in a frame of the active segment that
// valid frames follow is damage, not a torn tail, wherever it lands in the
// frame (length, CRC, index, payload). Property: the log is cut at the bad
// frame (raft needs no holes), but the cut bytes are kept, byte for byte,
// in a quarantine file, and the raft index the log had reached is
// persisted (DamagedThrough) until ClearDamage.
func TestDamageBelowTail(t *testing.T) {
	dir, a, last := crashLog(t)
	ends := frameEnds(t, last)
	if len(ends) < 4 {
		t.Fatalf("last segment has %d frames", len(ends))
	}
	lastEntry := a.entries[len(a.entries)-1].Index
	lastTerm := a.entries[len(a.entries)-1].Term
	bad := ends[len(ends)-4] // the frame starting here has 2 frames after it
	badIndex := lastEntry - 2
	for _, at := range []int64{bad, bad + 2, bad + 5, bad + 9, bad + 24, bad + 40} {
		d := t.TempDir()
		copyDir(t, dir, d)
		seg := filepath.Join(d, filepath.Base(last))
		orig, err := os.ReadFile(seg)
		if err != nil {
			t.Fatal(err)
		}
		flip(t, seg, at)
		flipped, _ := os.ReadFile(seg)
		l := mustOpen(t, d, testOptions())
		dmg := l.Damage()
		if dmg == nil || dmg.Cut.Offset != bad || dmg.Through != lastEntry {
			t.Fatalf("flip at %d: damage %+v, want cut at %d through %d", at, dmg, bad, lastEntry)
		}
		if r := l.RecoveryReport(); r == nil || r.Offset != bad {
			t.Fatalf("flip at %d: report %v", at, r)
		}
		if l.DamagedThrough() != lastEntry {
			t.Fatalf("DamagedThrough %d, want %d", l.DamagedThrough(), lastEntry)
		}
		if i, term := l.DamageMark(); i != lastEntry || term != lastTerm || dmg.ThroughTerm != lastTerm {
			t.Fatalf("DamageMark (%d, %d), Damage.ThroughTerm %d; want (%d, %d)", i, term, dmg.ThroughTerm, lastEntry, lastTerm)
		}
		q, err := os.ReadFile(filepath.Join(d, dmg.Quarantine))
		if err != nil || !bytes.Equal(q, flipped[bad:]) || len(orig) != len(flipped) {
			t.Fatalf("quarantine %s: %v, %d bytes, want %d", dmg.Quarantine, err, len(q), len(flipped[bad:]))
		}
		if l.LastIndex() != badIndex-1 {
			t.Fatalf("LastIndex %d, want %d", l.LastIndex(), badIndex-1)
		}
		if err := l.Verify(); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		// The mark survives a restart; the cut does not repeat.
		l = mustOpen(t, d, testOptions())
		if l.DamagedThrough() != lastEntry || l.Damage() != nil || l.RecoveryReport() != nil {
			t.Fatalf("reopen: through %d, damage %+v, report %v", l.DamagedThrough(), l.Damage(), l.RecoveryReport())
		}
		if err := l.ClearDamage(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(d, dmg.Quarantine)); !os.IsNotExist(err) {
			t.Fatalf("quarantine kept after ClearDamage: %v", err)
		}
		l.Close()
		l = mustOpen(t, d, testOptions())
		if l.DamagedThrough() != 0 {
			t.Fatalf("mark survived ClearDamage: %d", l.DamagedThrough())
		}
		l.Close()
	}
}

// TestTornTailNotDamage: bytes after the last whole frame that hold no
// whole valid frame (zeros, as a file extended but never written; or a
// frame's header without its payload; or a repeated header with a bad
// payload) are a torn tail: cut, no damage mark.
func TestTornTailNotDamage(t *testing.T) {
	dir, a, last := crashLog(t)
	ends := frameEnds(t, last)
	lastEntry := a.entries[len(a.entries)-1].Index
	orig, err := os.ReadFile(last)
	if err != nil {
		t.Fatal(err)
	}
	lastFrame := orig[ends[len(ends)-2]:]
	garbled := append([]byte(nil), lastFrame...)
	garbled[len(garbled)-1] ^= 1
	for name, tail := range map[string][]byte{
		"zeros":           make([]byte, 3000),
		"header only":     lastFrame[:frameHeaderSize],
		"garbled repeat":  garbled,
		"garbled + zeros": append(append([]byte(nil), garbled...), make([]byte, 100)...),
	} {
		t.Run(name, func(t *testing.T) {
			d := t.TempDir()
			copyDir(t, dir, d)
			seg := filepath.Join(d, filepath.Base(last))
			if err := os.WriteFile(seg, append(append([]byte(nil), orig...), tail...), 0o644); err != nil {
				t.Fatal(err)
			}
			l := mustOpen(t, d, testOptions())
			if l.Damage() != nil || l.DamagedThrough() != 0 {
				t.Fatalf("torn tail taken for damage: %+v", l.Damage())
			}
			if r := l.RecoveryReport(); r == nil || r.Offset != int64(len(orig)) {
				t.Fatalf("report %v, want cut at %d", r, len(orig))
			}
			checkRecovered(t, d, l, a, lastEntry)
		})
	}
}

// TestMarkDamaged: a mark only rises, keeps its term, survives a reopen,
// and goes with ClearDamage.
func TestMarkDamaged(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, testOptions())
	for _, v := range []uint64{7, 5, 9} {
		if err := l.MarkDamaged(v, v+100); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	l = mustOpen(t, dir, testOptions())
	if got := l.DamagedThrough(); got != 9 {
		t.Fatalf("DamagedThrough %d, want 9", got)
	}
	if i, term := l.DamageMark(); i != 9 || term != 109 {
		t.Fatalf("DamageMark (%d, %d), want (9, 109)", i, term)
	}
	if err := l.ClearDamage(); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = mustOpen(t, dir, testOptions())
	defer l.Close()
	if i, term := l.DamageMark(); i != 0 || term != 0 {
		t.Fatalf("DamageMark after ClearDamage (%d, %d), want none", i, term)
	}
}

// TestDamageMarkWithoutTerm: a mark written before damaged-term existed
// reads back with term 0 (unknown), which keeps the strict abstention.
func TestDamageMarkWithoutTerm(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, testOptions())
	if err := l.MarkDamaged(12, 3); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if err := os.Remove(filepath.Join(dir, damageTermFileName)); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, dir, testOptions())
	defer l.Close()
	if i, term := l.DamageMark(); i != 12 || term != 0 {
		t.Fatalf("DamageMark (%d, %d), want (12, 0)", i, term)
	}
}

// TestDamageCutCrashSafe: a crash between the steps of a damage cut
// (quarantine written in part, mark written, file not yet cut) leaves
// what the next Open needs to do it again, with the same outcome: the
// whole tail in the quarantine file, the mark, the cut.
func TestDamageCutCrashSafe(t *testing.T) {
	dir, a, last := crashLog(t)
	ends := frameEnds(t, last)
	lastEntry := a.entries[len(a.entries)-1].Index
	bad := ends[len(ends)-4]
	for name, before := range map[string]func(d, q string){
		"quarantine torn":       func(d, q string) { os.WriteFile(q, []byte("partial"), 0o644) },
		"mark written, not cut": func(d, q string) { writeOffsetFile(d, damageFileName, int64(lastEntry)) },
		"both, and a higher mark": func(d, q string) {
			os.WriteFile(q, []byte("x"), 0o644)
			writeOffsetFile(d, damageFileName, int64(lastEntry+5))
		},
	} {
		t.Run(name, func(t *testing.T) {
			d := t.TempDir()
			copyDir(t, dir, d)
			seg := filepath.Join(d, filepath.Base(last))
			flip(t, seg, bad+40)
			flipped, _ := os.ReadFile(seg)
			q := strings.TrimSuffix(seg, logSuffix) + quarantineSuffix + fmt.Sprint(bad)
			before(d, q)
			l := mustOpen(t, d, testOptions())
			defer l.Close()
			kept, err := os.ReadFile(q)
			if err != nil || !bytes.Equal(kept, flipped[bad:]) {
				t.Fatalf("quarantine: %d bytes, %v; want %d", len(kept), err, len(flipped[bad:]))
			}
			if l.LastIndex() != lastEntry-3 || l.DamagedThrough() < lastEntry {
				t.Fatalf("last index %d, mark %d; want %d, >= %d", l.LastIndex(), l.DamagedThrough(), lastEntry-3, lastEntry)
			}
		})
	}
}
