package segment

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"go.uber.org/zap"
)

// Open opens the log in dir, creating dir if needed, and recovers it.
//
// Recovery trusts closed segments (all but the last): it reads their file
// headers and checks their index files cheaply (sizes, first and last
// entry), rebuilding an index that fails by scanning its segment. Only the
// last segment is scanned frame by frame: the first frame that is short,
// has an impossible length, or fails its CRC ends the log. If no whole
// valid frame follows it, it is a torn tail: the file is truncated there
// and fsynced, and RecoveryReport says what was cut. If one does, it is
// damage (damage.go): the bytes cut are kept aside and DamagedThrough
// says which entries the log lost. So a restart costs one segment's scan
// however large the log is. Damage in a closed segment is found later, by
// the Read or Verify that meets it.
func Open(dir string, opts Options) (*Log, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("segment: open: %w", err)
	}
	l := &Log{dir: dir, opts: opts, logger: opts.Logger.With(zap.String("dir", dir))}
	if err := recoverAdopt(dir, l.logger); err != nil {
		return nil, err
	}
	start, err := readStartFile(dir)
	if err != nil {
		return nil, err
	}
	if err := l.recoverSwaps(); err != nil {
		return nil, err
	}
	mark, markTerm, err := readDamageMark(dir)
	if err != nil {
		return nil, err
	}
	l.damagedThrough.Store(mark)
	l.damagedTerm = markTerm
	cleaned, err := readOffsetFile(dir, cleanerFileName)
	if err != nil {
		// Only an optimisation is lost: the next Compact reads more.
		l.logger.Warn("segment: ignoring a damaged cleaner offset", zap.Error(err))
		cleaned = 0
	}
	segs, err := l.openSegments()
	if err != nil {
		return nil, err
	}
	if err := l.recover(segs); err != nil {
		for _, s := range l.mu.segs {
			s.f.Close()
		}
		return nil, err
	}
	l.mu.start, l.mu.next = start, start
	if n := len(l.mu.segs); n > 0 {
		l.mu.start = max(start, l.mu.segs[0].base)
		l.mu.next = l.mu.segs[n-1].next
	}
	if l.mu.start > l.mu.next {
		// The start offset was persisted above entries that were never
		// synced and are now lost; offsets continue from what survived.
		l.logger.Warn("segment: start offset beyond the recovered log end",
			zap.Int64("start", l.mu.start), zap.Int64("next", l.mu.next))
		l.mu.start = l.mu.next
	}
	l.mu.cleaned = min(cleaned, l.mu.next)
	return l, nil
}

// openSegments opens every .log file in dir, oldest first, and reads its
// header (left zero for a last file too short to hold one).
func (l *Log) openSegments() ([]*segment, error) {
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, fmt.Errorf("segment: open: %w", err)
	}
	var bases []int64
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || len(name) != 20+len(logSuffix) || !strings.HasSuffix(name, logSuffix) {
			continue
		}
		b, err := strconv.ParseInt(strings.TrimSuffix(name, logSuffix), 10, 64)
		if err != nil || b < 0 {
			continue
		}
		bases = append(bases, b)
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	segs := make([]*segment, 0, len(bases))
	closeAll := func() {
		for _, s := range segs {
			s.f.Close()
		}
	}
	for i, b := range bases {
		path := segmentPath(l.dir, b)
		s := &segment{path: path, name: filepath.Base(path) + logSuffix, base: b, next: b, maxTs: -1}
		if s.f, err = os.OpenFile(path+logSuffix, os.O_RDWR, 0); err != nil {
			closeAll()
			return nil, fmt.Errorf("segment: open: %w", err)
		}
		segs = append(segs, s)
		fi, err := s.f.Stat()
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("segment: open: %w", err)
		}
		s.size, s.created = fi.Size(), fi.ModTime()
		if i == len(bases)-1 && s.size < fileHeaderSize {
			break // a torn creation, for recover
		}
		var hdr [fileHeaderSize]byte
		if _, err := s.f.ReadAt(hdr[:], 0); err != nil {
			closeAll()
			return nil, s.corrupt(0, "read file header: %w", err)
		}
		base, baseIndex, err := parseFileHeader(hdr[:])
		if err == nil && base != b {
			err = fmt.Errorf("file header says base offset %d", base)
		}
		if err == nil && i > 0 && (baseIndex <= segs[i-1].baseIndex) {
			err = fmt.Errorf("base raft index %d does not follow %d", baseIndex, segs[i-1].baseIndex)
		}
		if err != nil {
			closeAll()
			return nil, s.corrupt(0, "%w", err)
		}
		s.baseIndex, s.lastIndex = baseIndex, baseIndex-1
	}
	return segs, nil
}

// recover scans the last segment and opens the closed ones.
func (l *Log) recover(segs []*segment) error {
	l.mu.segs = segs
	for len(l.mu.segs) > 0 {
		n := len(l.mu.segs)
		s := l.mu.segs[n-1]
		if s.size >= fileHeaderSize {
			if err := l.recoverLast(s); err != nil {
				return err
			}
			break
		}
		// Created but its first write was torn: nothing in it was acknowledged.
		l.setReport(s.corrupt(0, "torn file header: %d bytes", s.size))
		s.f.Close()
		l.mu.segs = l.mu.segs[:n-1]
		if err := removeSegmentFiles(s.path); err != nil {
			return err
		}
		if err := syncDir(l.dir); err != nil {
			return err
		}
	}
	for i := 0; i+1 < len(l.mu.segs); i++ {
		if err := l.openClosed(l.mu.segs[i], l.mu.segs[i+1]); err != nil {
			return err
		}
	}
	return nil
}

// recoverLast scans the last segment, truncating a torn or damaged tail.
func (l *Log) recoverLast(s *segment) error {
	res, cerr, err := s.scan(l.opts.IndexIntervalBytes, scanLimits{end: s.size})
	if err != nil {
		return fmt.Errorf("segment: recover %s: %w", s.name, err)
	}
	if cerr != nil {
		through, term, err := s.laterFrames(res.pos, s.size, res.lastIndex)
		if err != nil {
			return fmt.Errorf("segment: recover %s: %w", s.name, err)
		}
		if through == 0 {
			l.setReport(cerr)
		} else if err := l.keepDamage(s, cerr, res.lastIndex+1, through, term); err != nil {
			return fmt.Errorf("segment: recover %s: %w", s.name, err)
		}
		if err := s.f.Truncate(res.pos); err != nil {
			return fmt.Errorf("segment: recover %s: %w", s.name, err)
		}
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("segment: recover %s: %w", s.name, err)
		}
	}
	s.size, s.next, s.lastIndex = res.pos, res.next, res.lastIndex
	s.w, s.maxTs, s.hasBatch, s.active = res.indexer, res.maxTs, res.hasBatch, true
	return nil
}

// keepDamage quarantines the bytes from the bad frame on and persists the
// damage mark, before recoverLast cuts them (see damage.go).
func (l *Log) keepDamage(s *segment, cerr *CorruptionError, from, through, term uint64) error {
	q, err := l.quarantine(s, cerr.Offset)
	if err != nil {
		return fmt.Errorf("quarantine damaged bytes: %w", err)
	}
	if err := l.MarkDamaged(through, term); err != nil {
		return err
	}
	l.report = cerr
	l.damage = &Damage{Cut: cerr, Through: through, ThroughTerm: term, Quarantine: q}
	// Warn, not error: the caller decides what the loss means (replication
	// abstains or waits for an operator) and says so at error, once.
	l.logger.Warn("segment: damage below the log tail: valid entries follow a bad frame; cut at the bad frame, bytes kept aside, the entries must be fetched from another replica",
		zap.String("segment", cerr.Segment), zap.Int64("position", cerr.Offset), zap.Error(cerr.Err),
		zap.Uint64("lost_from_index", from), zap.Uint64("lost_through_index", through),
		zap.String("quarantine", q))
	return nil
}

func (l *Log) setReport(cerr *CorruptionError) {
	l.report = cerr
	l.logger.Warn("segment: cut a torn log tail (an unfinished write)",
		zap.String("segment", cerr.Segment), zap.Int64("position", cerr.Offset), zap.Error(cerr.Err))
}

// openClosed fills in a closed segment from its successor's header and its
// index files, rebuilding those if they fail the quick check.
func (l *Log) openClosed(s, succ *segment) error {
	s.next, s.lastIndex, s.hasBatch = succ.base, succ.baseIndex-1, true
	maxTs, err := quickCheckFiles(s.path, s.size, s.rel(s.next))
	if err == nil {
		s.maxTs = maxTs
		return nil
	}
	l.logger.Info("segment: rebuilding index", zap.String("segment", s.name), zap.Error(err))
	res, cerr, err := s.scan(l.opts.IndexIntervalBytes, scanLimits{end: s.size, nextOffset: s.next})
	if err != nil {
		return fmt.Errorf("segment: rebuild index of %s: %w", s.name, err)
	}
	if cerr != nil {
		// Not repaired here: the read that meets it reports it.
		l.logger.Warn("segment: damage in a closed segment", zap.String("segment", s.name),
			zap.Int64("position", cerr.Offset), zap.Error(cerr.Err))
	} else {
		res.finish(s.rel(s.next))
	}
	s.maxTs = res.maxTs
	s.idx.loaded, s.idx.index, s.idx.times = true, res.index, res.times
	if cerr == nil {
		// Synced: a torn rebuilt file could pass the quick check next time.
		if err := writeIndexFiles(s.path, &res.indexer, true); err != nil {
			return fmt.Errorf("segment: rebuild index of %s: %w", s.name, err)
		}
	}
	return nil
}

func quickCheckFiles(path string, logSize int64, relNext uint32) (int64, error) {
	fi, err := os.Open(path + indexSuffix)
	if err != nil {
		return 0, err
	}
	defer fi.Close()
	ft, err := os.Open(path + timeIndexSuffix)
	if err != nil {
		return 0, err
	}
	defer ft.Close()
	return quickCheck(fi, ft, logSize, relNext)
}

// removeSegmentFiles removes a segment's files: a compaction's leftovers
// first (so that recovery cannot swap in a segment deleted since), then
// the indexes, then the .log: a crash in between leaves a .log without
// indexes, which Open rebuilds.
func removeSegmentFiles(path string) error {
	for _, suf := range []string{swapSuffix, logSuffix + cleanedSuffix, indexSuffix + cleanedSuffix, timeIndexSuffix + cleanedSuffix, indexSuffix, timeIndexSuffix, logSuffix} {
		if err := os.Remove(path + suf); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("segment: remove: %w", err)
		}
	}
	return nil
}
