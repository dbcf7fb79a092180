package segment

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"go.uber.org/zap"
)

// The swap protocol replaces a closed segment's three files with a
// compacted version so that a crash at any point recovers either the old
// segment or the new one, whole, never a mix. The single commit point is
// one rename of the new .log; the index files are renamed into place
// before the .log, so a committed .log never meets the old indexes.
//
//	step  on disk after the step (X = 00000000000000004096)   a crash recovers
//	----  ----------------------------------------------------  ----------------
//	 1    X.log.cleaned, X.index.cleaned, X.timeindex.cleaned    old (Open removes
//	      written and fsynced, then the directory fsynced        the *.cleaned)
//	 2    rename X.log.cleaned -> X.log.swap, fsync directory    new: COMMITTED
//	 3    rename X.index.cleaned -> X.index                      new (Open finishes
//	 4    rename X.timeindex.cleaned -> X.timeindex              steps 3-5 for any
//	 5    rename X.log.swap -> X.log, fsync directory            X.log.swap)
//
// Before step 2 the old files are untouched; from step 2 on, X.log.swap is
// the proof of commit and the *.cleaned index files beside it are the new
// segment's. The suffixes are part of the format.
const (
	cleanedSuffix = ".cleaned"
	swapSuffix    = logSuffix + ".swap"
)

// swapFiles is a compacted segment being written under temporary names.
type swapFiles struct {
	path string // segment path without suffix
	f    *os.File
}

// createSwapFiles creates path.log.cleaned, removing a stale one (an
// earlier run's, cut short by an error that also failed to remove it).
func createSwapFiles(path string) (*swapFiles, error) {
	name := path + logSuffix + cleanedSuffix
	if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	return &swapFiles{path: path, f: f}, nil
}

// abort closes and removes the temporary files (before the commit only).
func (sw *swapFiles) abort() {
	sw.f.Close()
	for _, suf := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
		os.Remove(sw.path + suf + cleanedSuffix)
	}
}

// hook runs the test hook for a swap step, if one is set.
func (l *Log) hook(step string) error {
	if l.compactHook == nil {
		return nil
	}
	if err := l.compactHook(step); err != nil {
		return fmt.Errorf("segment: compact: %s: %w", step, err)
	}
	return nil
}

// swapIn commits ns, written to sw, in place of old (steps 2 to 5 above)
// and publishes it to readers. gen is the truncation generation the new
// segment was computed under. It returns skipped=true, having removed the
// temporary files, when old is no longer in the log (a prefix truncation
// deleted it). Errors before the commit remove the temporary files; an
// error after it leaves the swap for Open to finish.
func (l *Log) swapIn(old, ns *segment, sw *swapFiles, gen uint64) (skipped bool, err error) {
	l.swapMu.Lock()
	defer l.swapMu.Unlock()
	l.mu.RLock()
	closed, g, i := l.mu.closed, l.mu.gen, slices.Index(l.mu.segs, old)
	l.mu.RUnlock()
	switch {
	case closed:
		sw.abort()
		return false, ErrClosed
	case g != gen:
		sw.abort()
		return false, ErrCompactAborted
	case i < 0:
		sw.abort()
		return true, nil
	}
	// From here on the files at old's path change: the old segment must
	// never load its index from them. Readers use it until it is replaced.
	if _, _, err := old.load(l.opts.IndexIntervalBytes); err != nil {
		sw.abort()
		return false, err
	}
	if err := l.hook("commit"); err != nil {
		sw.abort()
		return false, err
	}
	if err := os.Rename(old.path+logSuffix+cleanedSuffix, old.path+swapSuffix); err != nil {
		sw.abort()
		return false, fmt.Errorf("segment: compact %s: commit: %w", old.name, err)
	}
	if err := l.finishSwap(old.path); err != nil {
		return false, fmt.Errorf("segment: compact %s: %w (the swap is committed: close and reopen the log to finish it)", old.name, err)
	}

	l.mu.Lock()
	segs := slices.Clone(l.mu.segs)
	segs[slices.Index(segs, old)] = ns
	l.mu.segs = segs
	l.mu.rewrites++
	l.mu.Unlock()
	// No reader holds old: readers use a segment only under mu.RLock, and
	// the writer's users of closed segments (TruncateSuffix,
	// TruncatePrefix, Close) are excluded by swapMu.
	old.f.Close()
	return false, nil
}

// finishSwap runs steps 2 (its fsync) to 5 for a committed swap at path.
func (l *Log) finishSwap(path string) error {
	if err := syncDir(l.dir); err != nil {
		return err
	}
	if err := l.hook("committed"); err != nil {
		return err
	}
	for _, suf := range []string{indexSuffix, timeIndexSuffix} {
		err := os.Rename(path+suf+cleanedSuffix, path+suf)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := l.hook("renamed " + suf); err != nil {
			return err
		}
	}
	if err := os.Rename(path+swapSuffix, path+logSuffix); err != nil {
		return err
	}
	if err := l.hook("renamed " + logSuffix); err != nil {
		return err
	}
	if err := syncDir(l.dir); err != nil {
		return err
	}
	return l.hook("done")
}

// recoverSwaps runs at Open, before the segments are listed: it finishes
// every committed swap (an X.log.swap) and removes every uncommitted one
// (the *.cleaned files left without an X.log.swap).
func (l *Log) recoverSwaps() error {
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return fmt.Errorf("segment: open: %w", err)
	}
	changed := false
	for _, e := range ents {
		if base, ok := swapBase(e.Name(), swapSuffix); ok {
			l.logger.Info("segment: finishing a committed compaction swap", zap.String("file", e.Name()))
			if err := l.finishSwap(segmentPath(l.dir, base)); err != nil {
				return fmt.Errorf("segment: open: finish the swap of %s: %w", e.Name(), err)
			}
			changed = true
		}
	}
	for _, e := range ents {
		name := e.Name()
		for _, suf := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
			if _, ok := swapBase(name, suf+cleanedSuffix); ok {
				err := os.Remove(filepath.Join(l.dir, name))
				if errors.Is(err, fs.ErrNotExist) {
					continue // renamed into place by a swap finished above
				}
				if err != nil {
					return fmt.Errorf("segment: open: %w", err)
				}
				l.logger.Info("segment: removed an uncommitted compaction file", zap.String("file", name))
				changed = true
			}
		}
	}
	if changed {
		return syncDir(l.dir)
	}
	return nil
}

// swapBase parses a name made of a 20-digit base offset and suffix.
func swapBase(name, suffix string) (int64, bool) {
	digits, ok := strings.CutSuffix(name, suffix)
	if !ok || len(digits) != 20 {
		return 0, false
	}
	b, err := strconv.ParseInt(digits, 10, 64)
	return b, err == nil && b >= 0
}
