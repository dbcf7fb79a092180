package segment

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// segState is what a log holds, segment by segment: the entries of each,
// by raft index.
type segState map[int64][]Entry

func logState(t testing.TB, l *Log) segState {
	t.Helper()
	out := segState{}
	for _, s := range l.Segments() {
		for i := s.BaseIndex; i <= s.LastIndex; i++ {
			e, err := l.ReadEntry(i)
			if err != nil {
				t.Fatal(err)
			}
			out[s.BaseOffset] = append(out[s.BaseOffset], e)
		}
	}
	return out
}

// checkOldOrNew: every segment of got equals its old or its new version,
// whole, and the log passes Verify and holds no temporary file.
func checkOldOrNew(t testing.TB, what string, l *Log, dir string, old, new segState) {
	t.Helper()
	if err := l.Verify(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	checkNoTemp(t, dir)
	got := logState(t, l)
	if len(got) != len(old) {
		t.Fatalf("%s: %d segments, had %d", what, len(got), len(old))
	}
	for base, es := range got {
		if !reflect.DeepEqual(es, old[base]) && !reflect.DeepEqual(es, new[base]) {
			t.Fatalf("%s: segment %d is neither its old nor its new version", what, base)
		}
	}
}

// compactCrashLog builds a log of closed segments full of overwrites and
// returns its directory and the options that compact it.
func compactCrashLog(t *testing.T) (string, CompactOptions) {
	m := newModel(t, 77, testOptions())
	for i := 0; i < 40; i++ {
		m.appendRandom(3)
	}
	if err := m.l.Roll(); err != nil {
		t.Fatal(err)
	}
	opts := CompactOptions{UpTo: m.next, Now: m.ts, DeleteRetention: 50}
	if err := m.l.Close(); err != nil {
		t.Fatal(err)
	}
	return m.dir, opts
}

// TestCompactCrashAtEveryStep stops the swap protocol at every step of
// every segment, by copying the directory as it is then (what a crash
// there would leave, the page cache having reached the disk), and opens
// each copy: every segment is its old or its new version, whole; no
// temporary file survives Open; Verify passes; a second Open reports
// nothing.
func TestCompactCrashAtEveryStep(t *testing.T) {
	src, opts := compactCrashLog(t)
	old := openState(t, src)
	dir := t.TempDir()
	copyDir(t, src, dir)
	l := mustOpen(t, dir, testOptions())
	var snaps []string
	var steps []string
	l.compactHook = func(step string) error {
		snap := t.TempDir()
		copyDir(t, dir, snap)
		snaps, steps = append(snaps, snap), append(steps, step)
		return nil
	}
	st, err := l.Compact(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if st.SegmentsRewritten < 3 {
		t.Fatalf("want several segments rewritten: %+v", st)
	}
	new := logState(t, l)
	l.Close()
	sawOld, sawNew := false, false
	for i, snap := range snaps {
		what := fmt.Sprintf("crash at step %d (%s)", i, steps[i])
		l := mustOpen(t, snap, testOptions())
		checkOldOrNew(t, what, l, snap, old, new)
		got := logState(t, l)
		sawOld = sawOld || reflect.DeepEqual(got, old)
		sawNew = sawNew || reflect.DeepEqual(got, new)
		l.Close()
		l = mustOpen(t, snap, testOptions())
		if r := l.RecoveryReport(); r != nil {
			t.Fatalf("%s: second open reported %v", what, r)
		}
		checkOldOrNew(t, what+", reopened", l, snap, old, new)
		l.Close()
	}
	if !sawOld || !sawNew {
		t.Fatalf("the crash points never gave the old (%t) or the new (%t) log", sawOld, sawNew)
	}
}

func openState(t *testing.T, dir string) segState {
	l := mustOpen(t, dir, testOptions())
	defer l.Close()
	return logState(t, l)
}

// TestCompactErrorAtEveryStep fails the swap protocol at every step, as
// an I/O error would. Before the commit, Compact removes its temporary
// files and the live log stays usable and whole; after it, Compact says to
// reopen, and Open finishes the swap. Either way each segment is its old
// or its new version.
func TestCompactErrorAtEveryStep(t *testing.T) {
	src, opts := compactCrashLog(t)
	old := openState(t, src)
	var new segState
	calls := 0
	{
		dir := t.TempDir()
		copyDir(t, src, dir)
		l := mustOpen(t, dir, testOptions())
		l.compactHook = func(string) error { calls++; return nil }
		if _, err := l.Compact(context.Background(), opts); err != nil {
			t.Fatal(err)
		}
		new = logState(t, l)
		l.Close()
	}
	injected := errors.New("injected")
	for k := 0; k < calls; k++ {
		dir := t.TempDir()
		copyDir(t, src, dir)
		l := mustOpen(t, dir, testOptions())
		n, step := 0, ""
		l.compactHook = func(s string) error {
			if n++; n == k+1 {
				step = s
				return injected
			}
			return nil
		}
		_, err := l.Compact(context.Background(), opts)
		if !errors.Is(err, injected) {
			t.Fatalf("error at hook call %d: Compact returned %v", k, err)
		}
		what := fmt.Sprintf("error at step %d (%s)", k, step)
		committed := strings.HasPrefix(step, "renamed") || step == "committed" || step == "done"
		if !committed {
			checkOldOrNew(t, what+", live", l, dir, old, new)
		} else if !strings.Contains(err.Error(), "reopen") {
			t.Fatalf("%s: error %q does not say to reopen", what, err)
		}
		l.Close()
		l = mustOpen(t, dir, testOptions())
		checkOldOrNew(t, what+", reopened", l, dir, old, new)
		// And a run to the end gives the new log.
		if _, err := l.Compact(context.Background(), opts); err != nil {
			t.Fatal(err)
		}
		if got := logState(t, l); !reflect.DeepEqual(got, new) {
			t.Fatalf("%s: compacting again does not give the new log", what)
		}
		l.Close()
	}
}

// TestCompactTruncationsDuringRun: a prefix truncation deleting the
// segment being rewritten makes the run skip it; a suffix truncation
// stops the run with ErrCompactAborted. Neither leaves a temporary file,
// and the log still equals the model.
func TestCompactTruncationsDuringRun(t *testing.T) {
	m := newModel(t, 21, testOptions())
	defer func() { m.l.Close() }()
	for i := 0; i < 40; i++ {
		m.appendRandom(3)
	}
	segs := m.l.Segments()
	fired := false
	m.l.compactHook = func(step string) error {
		if step == "written" && !fired {
			fired = true
			m.truncatePrefix(segs[1].BaseOffset) // deletes segment 0, being swapped
		}
		return nil
	}
	m.interrupted = true
	st := m.compact(m.next, m.ts, 0)
	if !fired || st.SegmentsRewritten >= st.SegmentsCleaned {
		t.Fatalf("the truncation did not hit the run: %+v", st)
	}
	checkNoTemp(t, m.dir)
	m.check()

	for i := 0; i < 20; i++ {
		m.appendRandom(3)
	}
	fired = false
	m.l.compactHook = func(step string) error {
		if step == "written" && !fired {
			fired = true
			m.truncateSuffix()
		}
		return nil
	}
	_, err := m.l.Compact(context.Background(), CompactOptions{UpTo: m.l.NextOffset(), Now: m.ts})
	if !errors.Is(err, ErrCompactAborted) {
		t.Fatalf("suffix truncation during the run: %v", err)
	}
	checkNoTemp(t, m.dir)
	m.l.compactHook = nil
	m.interrupted = true
	m.compact(m.next, m.ts, 0)
	m.check()
}
