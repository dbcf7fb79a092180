package segment

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// TruncateSuffix drops every entry with a raft index above afterIndex (raft
// conflict resolution). Later segments are deleted, newest first, then the
// segment holding afterIndex is cut and becomes the active one; NextOffset
// and LastIndex follow. Everything is fsynced before it returns.
//
// The cut segment is scanned from its start to find the cut and rebuild its
// index (rather than resuming from the index, which cannot restore the
// segment's max timestamp); conflicts are rare and a scan costs no more
// than the one recovery does.
func (l *Log) TruncateSuffix(afterIndex uint64) error {
	l.swapMu.Lock()
	defer l.swapMu.Unlock()
	l.mu.RLock()
	closed, segs, start := l.mu.closed, l.mu.segs, l.mu.start
	has := l.hasEntries()
	l.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if !has || afterIndex >= segs[len(segs)-1].lastIndex {
		return nil
	}
	k := len(segs) - 1
	for k >= 0 && segs[k].baseIndex > afterIndex {
		k--
	}
	var res scanResult
	if k >= 0 {
		s := segs[k]
		lim := scanLimits{end: s.size, stopIndex: afterIndex + 1}
		if !s.active {
			lim.nextOffset = s.next
		}
		var cerr *CorruptionError
		var err error
		res, cerr, err = s.scan(l.opts.IndexIntervalBytes, lim)
		if err != nil {
			return fmt.Errorf("segment: truncate %s: %w", s.name, err)
		}
		if cerr != nil {
			return cerr
		}
		if res.lastIndex != afterIndex {
			return s.corrupt(res.pos, "segment ends at raft index %d, before %d", res.lastIndex, afterIndex)
		}
	}

	removed := segs[k+1:]
	l.mu.Lock()
	l.mu.gen++
	l.mu.rewrites++
	l.mu.segs = segs[: k+1 : k+1]
	if k >= 0 {
		s := segs[k]
		s.size, s.next, s.lastIndex = res.pos, res.next, res.lastIndex
		s.w, s.maxTs, s.hasBatch, s.active = res.indexer, res.maxTs, res.hasBatch, true
		l.mu.next = res.next
	} else {
		l.mu.next = start
	}
	// The log below CleanedUpTo is deduplicated; below the new end it
	// still is. Persisted now: appends would soon refill the offsets above.
	lowered := l.mu.cleaned > l.mu.next
	l.mu.cleaned = min(l.mu.cleaned, l.mu.next)
	cleaned := l.mu.cleaned
	l.mu.Unlock()
	if lowered {
		if err := writeOffsetFile(l.dir, cleanerFileName, cleaned); err != nil {
			return err
		}
	}

	for i := len(removed) - 1; i >= 0; i-- {
		removed[i].f.Close()
		if err := removeSegmentFiles(removed[i].path); err != nil {
			return err
		}
		l.dirDirty = true
	}
	if k >= 0 {
		s := segs[k]
		s.idx.Lock()
		s.idx.loaded, s.idx.index, s.idx.times = false, nil, nil
		s.idx.Unlock()
		if err := s.f.Truncate(res.pos); err != nil {
			return fmt.Errorf("segment: truncate %s: %w", s.name, err)
		}
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("segment: truncate %s: %w", s.name, err)
		}
		if err := writeIndexFiles(s.path, &s.w, false); err != nil {
			return fmt.Errorf("segment: truncate %s: %w", s.name, err)
		}
	} else if err := writeStartFile(l.dir, start); err != nil {
		// With no segment left, the start offset is the only record of
		// where the log continues.
		return err
	}
	return l.syncDir()
}

// TruncatePrefix makes beforeOffset the first readable offset (if above
// StartOffset) and deletes the segments wholly below it, never the active
// one. StartOffset is logical: records below it are never returned even
// while their segment survives. It is persisted in the start-offset file
// before any segment is deleted. beforeOffset above NextOffset returns an
// *OutOfRangeError.
func (l *Log) TruncatePrefix(beforeOffset int64) error {
	l.swapMu.Lock()
	defer l.swapMu.Unlock()
	l.mu.RLock()
	closed, segs, start, next := l.mu.closed, l.mu.segs, l.mu.start, l.mu.next
	l.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if beforeOffset <= start {
		return nil
	}
	if beforeOffset > next {
		return &OutOfRangeError{Offset: beforeOffset, Start: start, End: next}
	}
	if err := writeStartFile(l.dir, beforeOffset); err != nil {
		return err
	}
	drop := 0
	for drop < len(segs)-1 && segs[drop].next <= beforeOffset {
		drop++
	}
	l.mu.Lock()
	l.mu.segs = segs[drop:]
	l.mu.start = beforeOffset
	l.mu.rewrites++
	l.mu.Unlock()
	for _, s := range segs[:drop] {
		s.f.Close()
		if err := removeSegmentFiles(s.path); err != nil {
			return err
		}
		l.dirDirty = true
	}
	return l.syncDir()
}

// writeStartFile persists the start offset atomically.
func writeStartFile(dir string, start int64) error {
	return writeOffsetFile(dir, startFileName, start)
}

// writeOffsetFile persists an offset file (start-offset, cleaner-offset)
// atomically: tmp file, fsync, rename, fsync of the directory.
func writeOffsetFile(dir, file string, v int64) error {
	name := filepath.Join(dir, file)
	if err := writeFile(name+".tmp", appendStartFile(nil, v), true); err != nil {
		return fmt.Errorf("segment: write %s: %w", file, err)
	}
	if err := os.Rename(name+".tmp", name); err != nil {
		return fmt.Errorf("segment: write %s: %w", file, err)
	}
	return syncDir(dir)
}

// readStartFile returns the persisted start offset, 0 if none.
func readStartFile(dir string) (int64, error) {
	return readOffsetFile(dir, startFileName)
}

// readOffsetFile returns the offset persisted in file, 0 if none.
func readOffsetFile(dir, file string) (int64, error) {
	b, err := os.ReadFile(filepath.Join(dir, file))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("segment: open: %w", err)
	}
	v, err := parseStartFile(b)
	if err != nil {
		return 0, &CorruptionError{Segment: file, Err: err}
	}
	return v, nil
}
