package segment

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// adoptLogs makes a log in dir holding indexes 1..30 from offset 0 and,
// in dir/copy, a closed log holding indexes 100..140 from offset 500 (a
// staged copy of another replica's log); it returns the log and the
// copy's bytes as read before the adoption.
func adoptLogs(t *testing.T, dir string) (*Log, []byte) {
	t.Helper()
	opts := Options{MaxSegmentBytes: 4096}
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	appendBatches(t, l, 1, 30)
	src, err := Open(filepath.Join(dir, "copy"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Reset(500); err != nil {
		t.Fatal(err)
	}
	appendBatches(t, src, 100, 41)
	if len(src.Segments()) < 3 {
		t.Fatalf("the copy has %d segments; want several", len(src.Segments()))
	}
	want := readAllBytes(t, src)
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	return l, want
}

func appendBatches(t *testing.T, l *Log, first uint64, n int) {
	t.Helper()
	for i := range n {
		if _, err := l.Append(Entry{Index: first + uint64(i), Term: 1, Type: EntryBatch, Data: batch(t, 3, 1_700_000_000_000, 100)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
}

func readAllBytes(t *testing.T, l *Log) []byte {
	t.Helper()
	var out []byte
	for i := l.FirstIndex(); i <= l.LastIndex() && i > 0; i++ {
		e, err := l.ReadEntry(i)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e.Data...)
	}
	return out
}

func checkAdopted(t *testing.T, l *Log, dir string, want []byte) {
	t.Helper()
	if l.FirstIndex() != 100 || l.LastIndex() != 140 || l.StartOffset() != 500 {
		t.Fatalf("adopted log: indexes %d..%d from offset %d; want 100..140 from 500", l.FirstIndex(), l.LastIndex(), l.StartOffset())
	}
	if got := readAllBytes(t, l); !bytes.Equal(got, want) {
		t.Fatal("the adopted log's entries differ from the copy's")
	}
	if _, err := os.Stat(filepath.Join(dir, "copy")); !os.IsNotExist(err) {
		t.Fatalf("the copy's directory is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, adoptFileName)); !os.IsNotExist(err) {
		t.Fatalf("the adoption marker is still there: %v", err)
	}
	// Appends continue the adopted log.
	next := l.NextOffset()
	offs, err := l.Append(Entry{Index: 141, Term: 1, Type: EntryBatch, Data: batch(t, 3, 1_700_000_000_000, 100)})
	if err != nil || offs[0] != next {
		t.Fatalf("append after the adoption: %v at %v, want offset %d", err, offs, next)
	}
}

func TestAdoptReplacesTheLog(t *testing.T) {
	dir := t.TempDir()
	l, want := adoptLogs(t, dir)
	defer l.Close()
	if err := l.Adopt(filepath.Join(dir, "copy")); err != nil {
		t.Fatal(err)
	}
	checkAdopted(t, l, dir, want)
	// And it reopens as the same log.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2, err := Open(dir, Options{MaxSegmentBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if l2.FirstIndex() != 100 || l2.LastIndex() != 141 || l2.StartOffset() != 500 {
		t.Fatalf("reopened: indexes %d..%d from %d", l2.FirstIndex(), l2.LastIndex(), l2.StartOffset())
	}
	if err := l2.Adopt(filepath.Join(dir, "..", "elsewhere")); err == nil {
		t.Fatal("adopted a directory outside the log's")
	}
}

// A crash at any point of Adopt leaves a state Open finishes into the
// adopted log.
func TestAdoptCrashRecovery(t *testing.T) {
	for _, tc := range []struct {
		name  string
		crash func(t *testing.T, dir string)
	}{
		{"after the remove marker", func(t *testing.T, dir string) {
			if err := writeAdoptMark(dir, adoptRemove, "copy"); err != nil {
				t.Fatal(err)
			}
		}},
		{"part-way through removing", func(t *testing.T, dir string) {
			if err := writeAdoptMark(dir, adoptRemove, "copy"); err != nil {
				t.Fatal(err)
			}
			files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
			os.Remove(files[0])
		}},
		{"part-way through moving", func(t *testing.T, dir string) {
			if err := writeAdoptMark(dir, adoptRemove, "copy"); err != nil {
				t.Fatal(err)
			}
			if err := removeOwnFiles(dir); err != nil {
				t.Fatal(err)
			}
			if err := writeAdoptMark(dir, adoptMove, "copy"); err != nil {
				t.Fatal(err)
			}
			files, _ := filepath.Glob(filepath.Join(dir, "copy", "*"))
			slices.Sort(files)
			for _, f := range files[:len(files)/2] {
				if err := os.Rename(f, filepath.Join(dir, filepath.Base(f))); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"after moving", func(t *testing.T, dir string) {
			if err := writeAdoptMark(dir, adoptRemove, "copy"); err != nil {
				t.Fatal(err)
			}
			if err := removeOwnFiles(dir); err != nil {
				t.Fatal(err)
			}
			if err := writeAdoptMark(dir, adoptMove, "copy"); err != nil {
				t.Fatal(err)
			}
			files, _ := filepath.Glob(filepath.Join(dir, "copy", "*"))
			for _, f := range files {
				if err := os.Rename(f, filepath.Join(dir, filepath.Base(f))); err != nil {
					t.Fatal(err)
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l, want := adoptLogs(t, dir)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			tc.crash(t, dir)
			l, err := Open(dir, Options{MaxSegmentBytes: 4096})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			checkAdopted(t, l, dir, want)
		})
	}
}
