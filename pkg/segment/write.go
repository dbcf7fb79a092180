package segment

import (
	"fmt"
	"os"

	"go.uber.org/zap"

	"github.com/stratalog/strata/pkg/record"
)

// maxKeptBuffer: Append keeps its frame buffer between calls up to this
// size, so that one huge append does not pin its memory.
const maxKeptBuffer = 4 << 20

// Append stores entries at the end of the log with one write to the active
// segment file, and returns each entry's base offset (for an EntryRaft
// entry, the offset the next batch will get). It rewrites each batch's
// base offset in e.Data. It does not fsync: call Sync before acknowledging.
//
// Raft indexes must be contiguous: the first is LastIndex()+1 (any value
// above 0 when the log is empty), then one more per entry. Batches are
// checked for framing only (the caller checks their CRC).
func (l *Log) Append(entries ...Entry) ([]int64, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	l.mu.RLock()
	closed, next := l.mu.closed, l.mu.next
	l.mu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	want := l.LastIndex() + 1
	if want == 1 {
		want = entries[0].Index
	}
	total, offsets := int64(0), int64(0)
	for i, e := range entries {
		if e.Index == 0 || e.Index != want+uint64(i) {
			return nil, invalidEntry("entry %d has raft index %d, want %d", i, e.Index, want+uint64(i))
		}
		if len(e.Data) > MaxEntryBytes {
			return nil, invalidEntry("entry %d holds %d bytes, more than %d", i, len(e.Data), MaxEntryBytes)
		}
		switch e.Type {
		case EntryRaft:
		case EntryBatch:
			h, err := checkBatch(e.Data)
			if err != nil {
				return nil, invalidEntry("entry %d: %v", i, err)
			}
			offsets += int64(h.LastOffsetDelta) + 1
		default:
			return nil, invalidEntry("entry %d has type %d", i, e.Type)
		}
		total += frameHeaderSize + int64(len(e.Data))
	}

	s, err := l.prepareActive(entries[0], total, next+offsets)
	if err != nil {
		return nil, err
	}
	if s.frames()+uint64(len(entries)) > 1<<32 {
		return nil, invalidEntry("%d entries do not fit the segment's 2^32 raft indexes", len(entries))
	}

	// Assemble the frames and their index entries outside the lock: readers
	// see none of it until it is written and published below.
	buf, pos, framePos, baseIndex := l.buf[:0], s.size, s.size, s.baseIndex
	if need := int(total) + fileHeaderSize; cap(buf) < need {
		// Grown by appending, the buffer of a follower's 8 MiB of
		// catch-up was copied over and over: a third of its CPU (pprof).
		buf = make([]byte, 0, need)
	}
	if s.frames() == 0 {
		// A segment's header goes out with its first frames (rewritten when
		// a recovered empty segment takes the base index of an empty log).
		baseIndex = entries[0].Index
		buf, pos, framePos = appendFileHeader(buf, s.base, baseIndex), 0, fileHeaderSize
	}
	w := s.w
	bases := make([]int64, len(entries))
	for i, e := range entries {
		bases[i] = next
		var ts int64
		rel := uint32(next - s.base)
		if e.Type == EntryBatch {
			record.SetBaseOffset(e.Data, next)
			h, _ := record.ParseHeader(e.Data)
			ts, next = h.MaxTimestamp, h.NextOffset()
		}
		n := int64(len(buf))
		buf = appendFrame(buf, e)
		w.add(framePos, rel, uint32(e.Index-baseIndex), int64(len(buf))-n, e.Type == EntryBatch, ts)
		framePos += int64(len(buf)) - n
	}
	if cap(buf) <= maxKeptBuffer {
		l.buf = buf
	} else {
		l.buf = nil
	}
	if _, err := s.f.WriteAt(buf, pos); err != nil {
		// Cut a partial write so the next Append starts at a frame boundary
		// (a fresh segment back to empty: a torn header is recoverable).
		if terr := s.f.Truncate(pos); terr != nil {
			l.logger.Error("segment: cannot undo a failed append", zap.String("segment", s.name), zap.Error(terr))
		}
		return nil, fmt.Errorf("segment: append to %s: %w", s.name, err)
	}

	l.mu.Lock()
	s.baseIndex = baseIndex
	s.size = framePos
	s.next = next
	s.lastIndex = entries[len(entries)-1].Index
	s.w = w
	s.maxTs, s.hasBatch = w.maxTs, w.hasBatch
	l.mu.next = next
	l.mu.Unlock()
	return bases, nil
}

// prepareActive returns the segment the next Append of total bytes goes to,
// rolling or creating one as needed. end is NextOffset after the Append.
func (l *Log) prepareActive(first Entry, total, end int64) (*segment, error) {
	l.mu.RLock()
	var s *segment
	if n := len(l.mu.segs); n > 0 && l.mu.segs[n-1].active {
		s = l.mu.segs[n-1]
	}
	next := l.mu.next
	l.mu.RUnlock()
	if s != nil && s.hasBatch {
		tooBig := s.size+total > l.opts.MaxSegmentBytes || end-s.base > 1<<32-1
		tooOld := l.opts.MaxSegmentAge > 0 && !l.opts.Clock().Before(s.created.Add(l.opts.MaxSegmentAge))
		if tooBig || tooOld {
			if err := l.Roll(); err != nil {
				return nil, err
			}
			s = nil
		}
	}
	if s != nil {
		if s.size+total > maxSegmentBytes+frameHeaderSize+MaxEntryBytes || end-s.base > 1<<32-1 {
			return nil, invalidEntry("append of %d bytes, %d offsets does not fit segment %s", total, end-next, s.name)
		}
		return s, nil
	}
	if total+fileHeaderSize > maxSegmentBytes+frameHeaderSize+MaxEntryBytes || end-next > 1<<32-1 {
		return nil, invalidEntry("append of %d bytes, %d offsets does not fit one segment", total, end-next)
	}
	return l.createSegment(next, first.Index)
}

// createSegment creates an empty active segment; its header is written
// with its first frames.
func (l *Log) createSegment(base int64, baseIndex uint64) (*segment, error) {
	path := segmentPath(l.dir, base)
	f, err := os.OpenFile(path+logSuffix, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("segment: create: %w", err)
	}
	s := &segment{
		path: path, name: fmt.Sprintf("%020d%s", base, logSuffix), base: base, baseIndex: baseIndex,
		f: f, created: l.opts.Clock(), size: fileHeaderSize, next: base, lastIndex: baseIndex - 1,
		maxTs: -1, active: true, w: newIndexer(l.opts.IndexIntervalBytes),
	}
	l.dirDirty = true
	l.mu.Lock()
	l.mu.segs = append(l.mu.segs, s)
	l.mu.Unlock()
	return s, nil
}

// Sync fsyncs the active segment's log file, and the directory if a
// segment file was created or removed since the last Sync. Index files are
// not synced: they are rebuilt on recovery.
func (l *Log) Sync() error {
	s, err := l.activeSegment()
	if err != nil {
		return err
	}
	if s != nil {
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("segment: sync %s: %w", s.name, err)
		}
	}
	return l.syncDir()
}

func (l *Log) syncDir() error {
	if !l.dirDirty {
		return nil
	}
	if err := syncDir(l.dir); err != nil {
		return err
	}
	l.dirDirty = false
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("segment: sync dir: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("segment: sync dir: %w", err)
	}
	return nil
}

// activeSegment returns the segment appends go to, or nil.
func (l *Log) activeSegment() (*segment, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.mu.closed {
		return nil, ErrClosed
	}
	if n := len(l.mu.segs); n > 0 && l.mu.segs[n-1].active {
		return l.mu.segs[n-1], nil
	}
	return nil, nil
}

// Roll closes the active segment: it fsyncs its log file, writes and
// fsyncs both index files (with a final time-index entry), and the next
// Append starts a new segment. It is a no-op when the active segment holds
// no batch: segment files are named by base offset, and a segment without
// a batch would share its name with the next.
func (l *Log) Roll() error {
	s, err := l.activeSegment()
	if err != nil || s == nil || !s.hasBatch {
		return err
	}
	w := s.w
	w.finish(s.rel(s.next))
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("segment: roll %s: %w", s.name, err)
	}
	if err := writeIndexFiles(s.path, &w, true); err != nil {
		return fmt.Errorf("segment: roll %s: %w", s.name, err)
	}
	l.dirDirty = true
	if err := l.syncDir(); err != nil {
		return err
	}
	s.idx.Lock()
	s.idx.loaded, s.idx.index, s.idx.times = true, w.index, w.times
	s.idx.Unlock()
	l.mu.Lock()
	s.active, s.w = false, indexer{}
	l.mu.Unlock()
	return nil
}
