package segment

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"go.uber.org/zap"
)

// Adopt replaces the whole log with another log's segments, moved (not
// copied) from srcDir, a closed log's directory inside this log's
// directory (replication stages a copy of the leader's log there for a
// snapshot install). It costs renames and the scan of the adopted last
// segment that Open does, whatever the log's size. srcDir is removed.
// Like Append, it is called from the writer goroutine; readers see an
// empty log while it runs.
//
// The protocol, crash-safe at every step, with one marker file
// (adoptFileName, written atomically) that Open finishes:
//
//	step  on disk after the step                              a crash recovers
//	----  --------------------------------------------------  ----------------------------
//	 1    marker "remove <src>"                                Open removes this log's
//	 2    this log's segment, index, cleaner and start files   segment files (again) and
//	      removed, directory fsynced                           goes on with step 3
//	 3    marker "move <src>"                                  Open moves what is left in
//	 4    src's files renamed here, directory fsynced          src here (step 4 again)
//	 5    marker removed, src removed                          the adopted log
//
// Step 2 removes only what this log's own files are named (segments, their
// index and swap files, start-offset, cleaner-offset), never src or other
// files in the directory. The marker's name and contents are part of the
// format.
func (l *Log) Adopt(srcDir string) error {
	l.swapMu.Lock()
	defer l.swapMu.Unlock()
	rel, err := filepath.Rel(l.dir, srcDir)
	if err != nil || rel == "." || strings.Contains(rel, string(filepath.Separator)) || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("segment: adopt %s: not a directory directly inside %s", srcDir, l.dir)
	}
	l.mu.Lock()
	if l.mu.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	old := l.mu.segs
	l.mu.segs = nil
	l.mu.gen++ // a running Compact must not swap a segment of the old log in
	l.mu.rewrites++
	l.mu.Unlock()
	for _, s := range old {
		s.f.Close()
	}
	if err := adoptFiles(l.dir, rel); err != nil {
		// The marker stays: the next Open finishes the adoption.
		l.markClosed()
		return fmt.Errorf("segment: adopt %s (reopen the log to finish): %w", rel, err)
	}
	return l.reopen()
}

// markClosed makes the log refuse further use after a failed Adopt.
func (l *Log) markClosed() {
	l.mu.Lock()
	l.mu.closed = true
	l.mu.Unlock()
}

// reopen loads the segments now in the directory, as Open does.
func (l *Log) reopen() error {
	start, err := readStartFile(l.dir)
	if err != nil {
		l.markClosed()
		return err
	}
	segs, err := l.openSegments()
	if err != nil {
		l.markClosed()
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.recover(segs); err != nil {
		for _, s := range l.mu.segs {
			s.f.Close()
		}
		l.mu.segs, l.mu.closed = nil, true
		return err
	}
	l.mu.start, l.mu.next, l.mu.cleaned = start, start, 0
	if n := len(l.mu.segs); n > 0 {
		l.mu.start = max(start, l.mu.segs[0].base)
		l.mu.next = l.mu.segs[n-1].next
	}
	l.mu.start = min(l.mu.start, l.mu.next)
	return nil
}

// adoptFileName is the marker of an adoption in progress (see Adopt).
const adoptFileName = "adopt-pending"

const (
	adoptRemove = "remove"
	adoptMove   = "move"
)

// adoptFiles runs steps 1 to 5 of Adopt on disk.
func adoptFiles(dir, src string) error {
	if err := writeAdoptMark(dir, adoptRemove, src); err != nil {
		return err
	}
	return finishAdopt(dir, adoptRemove, src)
}

// finishAdopt runs Adopt's steps from the one the marker names.
func finishAdopt(dir, phase, src string) error {
	if phase == adoptRemove {
		if err := removeOwnFiles(dir); err != nil {
			return err
		}
		if err := syncDir(dir); err != nil {
			return err
		}
		if err := writeAdoptMark(dir, adoptMove, src); err != nil {
			return err
		}
	}
	srcDir := filepath.Join(dir, src)
	ents, err := os.ReadDir(srcDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, e := range ents {
		if e.IsDir() || !ownFile(e.Name()) {
			continue
		}
		if err := os.Rename(filepath.Join(srcDir, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(dir, adoptFileName)); err != nil {
		return err
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	return os.RemoveAll(srcDir)
}

// ownFile reports whether name is one of a log's own files: a segment
// (its .log, indexes, swap leftovers), start-offset or cleaner-offset.
func ownFile(name string) bool {
	if name == startFileName || name == cleanerFileName {
		return true
	}
	if len(name) < 20 {
		return false
	}
	for _, c := range name[:20] {
		if c < '0' || c > '9' {
			return false
		}
	}
	switch name[20:] {
	case logSuffix, indexSuffix, timeIndexSuffix, swapSuffix,
		logSuffix + cleanedSuffix, indexSuffix + cleanedSuffix, timeIndexSuffix + cleanedSuffix:
		return true
	}
	return false
}

// removeOwnFiles removes the log's own files from dir (see ownFile).
func removeOwnFiles(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.IsDir() || !ownFile(e.Name()) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// The marker holds "<phase> <src>\n".
func writeAdoptMark(dir, phase, src string) error {
	name := filepath.Join(dir, adoptFileName)
	if err := writeFile(name+".tmp", []byte(phase+" "+src+"\n"), true); err != nil {
		return fmt.Errorf("segment: write %s: %w", adoptFileName, err)
	}
	if err := os.Rename(name+".tmp", name); err != nil {
		return fmt.Errorf("segment: write %s: %w", adoptFileName, err)
	}
	return syncDir(dir)
}

// recoverAdopt finishes an adoption a crash cut short (Open calls it
// before reading the directory).
func recoverAdopt(dir string, logger *zap.Logger) error {
	b, err := os.ReadFile(filepath.Join(dir, adoptFileName))
	if errors.Is(err, fs.ErrNotExist) {
		os.Remove(filepath.Join(dir, adoptFileName+".tmp"))
		return nil
	}
	if err != nil {
		return fmt.Errorf("segment: open: %w", err)
	}
	phase, src, ok := strings.Cut(string(bytes.TrimSuffix(b, []byte("\n"))), " ")
	if !ok || (phase != adoptRemove && phase != adoptMove) || src == "" || strings.ContainsAny(src, `/\`) || src == ".." {
		return &CorruptionError{Segment: adoptFileName, Err: fmt.Errorf("unreadable marker %q", b)}
	}
	logger.Warn("segment: finishing the adoption of a log copy that a crash cut short", zap.String("phase", phase), zap.String("from", src))
	if err := finishAdopt(dir, phase, src); err != nil {
		return fmt.Errorf("segment: open: finish adopting %s: %w", src, err)
	}
	return nil
}
