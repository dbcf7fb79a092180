package segment

import (
	"errors"
	"fmt"

	"go.uber.org/zap"
)

// Repairing a damaged frame in a closed segment.
//
// Every replica stores the same raft log byte for byte: the same entries,
// framed the same way, with the same offsets (a follower checks each
// batch's CRC and base offset before storing it). So a frame of a closed
// segment that fails its CRC can be rewritten in place from another
// replica's copy of the same entry, as long as the copy frames to exactly
// the bytes the damaged frame spans (key compaction may have rewritten one
// replica's segment and not yet the other's: then the sizes differ and
// nothing is written). Nothing else in the segment moves, so its indexes
// stay right.
//
// It takes two calls so that no lock is held while the caller fetches the
// entry: DamagedFrame scans the segment up to the damage and says which
// entry belongs there; RepairFrame checks that nothing changed meanwhile
// and writes the frame.

// ErrRepairMismatch: the entry offered to RepairFrame does not fit the
// damaged frame's place (another size, index or offset). A retry with the
// same entry does not help.
var ErrRepairMismatch = errors.New("segment: the entry does not fit the damaged frame")

// FrameRef names a damaged frame of a closed segment and the entry that
// belongs there, for RepairFrame.
type FrameRef struct {
	seg    *segment
	pos    int64
	end    int64 // where the next frame starts (or the segment ends)
	next   int64 // the segment's next offset
	Index  uint64
	Offset int64 // the offset the entry's first record has
}

// DamagedFrame finds the frame at position pos of the closed segment named
// segment (a CorruptionError's Segment and Offset) and returns which raft
// index belongs there. It fails if the segment is gone or active, if pos
// is not where a frame starts, or if the frame there is sound.
func (l *Log) DamagedFrame(segment string, pos int64) (FrameRef, error) {
	s, span, err := l.closedSegment(segment)
	if err != nil {
		return FrameRef{}, err
	}
	if pos <= 0 || pos >= span.size {
		return FrameRef{}, fmt.Errorf("segment: position %d outside %s", pos, segment)
	}
	res, cerr, err := s.scan(l.opts.IndexIntervalBytes, scanLimits{end: pos, nextOffset: span.next})
	if err != nil {
		return FrameRef{}, err
	}
	if cerr != nil {
		return FrameRef{}, fmt.Errorf("segment: %s has damage at %d, before %d: %w", segment, cerr.Offset, pos, cerr)
	}
	if res.pos != pos {
		return FrameRef{}, fmt.Errorf("segment: no frame starts at %d in %s", pos, segment)
	}
	ref := FrameRef{seg: s, pos: pos, Index: res.lastIndex + 1, Offset: res.next, next: span.next}
	var buf []byte
	if _, _, ok, err := s.frameAt(pos, span.size, &buf); err != nil || ok {
		if err == nil {
			err = fmt.Errorf("segment: the frame at %d in %s is sound", pos, segment)
		}
		return FrameRef{}, err
	}
	// The damaged frame ends where the next one, index+1, starts.
	ref.end = span.size
	if ref.Index < span.lastIndex {
		next, found, err := s.resync(pos+1, span.size, ref.Index, ref.Index+1)
		if err != nil {
			return FrameRef{}, err
		}
		if !found {
			return FrameRef{}, fmt.Errorf("segment: no sound frame %d after the damage at %d in %s", ref.Index+1, pos, segment)
		}
		ref.end = next
	}
	return ref, nil
}

// RepairFrame writes e, another replica's copy of the entry ref names, in
// place of the damaged frame, and fsyncs the segment. It fails with
// ErrRepairMismatch if e does not frame to exactly the damaged span with
// the index and offset that belong there, and with an error if the
// segment was deleted, replaced or truncated since DamagedFrame.
func (l *Log) RepairFrame(ref FrameRef, e Entry) error {
	l.swapMu.Lock() // no swap or truncation while the frame is written
	defer l.swapMu.Unlock()
	l.mu.RLock()
	present := false
	for _, s := range l.mu.segs {
		present = present || (s == ref.seg && !s.active && s.next == ref.next && s.size >= ref.end)
	}
	closed := l.mu.closed
	l.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if !present || ref.seg == nil {
		return fmt.Errorf("segment: repair: the damaged segment was deleted or rewritten since it was read")
	}
	s := ref.seg
	frame := appendFrame(nil, e)
	if int64(len(frame)) != ref.end-ref.pos {
		return fmt.Errorf("%w: %d bytes, the damaged frame spans %d (compacted on one replica only?)", ErrRepairMismatch, len(frame), ref.end-ref.pos)
	}
	if e.Index != ref.Index {
		return fmt.Errorf("%w: raft index %d, want %d", ErrRepairMismatch, e.Index, ref.Index)
	}
	if cerr := s.checkFrame(ref.pos, parseFrameHeader(frame), e.Data, ref.Index, ref.Offset, ref.next); cerr != nil {
		return fmt.Errorf("%w: %v", ErrRepairMismatch, cerr.Err)
	}
	if _, err := s.f.WriteAt(frame, ref.pos); err != nil {
		return fmt.Errorf("segment: repair %s: %w", s.name, err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("segment: repair %s: %w", s.name, err)
	}
	l.logger.Info("segment: rewrote a damaged frame from another replica's copy",
		zap.String("segment", s.name), zap.Int64("position", ref.pos), zap.Uint64("index", ref.Index))
	return nil
}

// closedSpan is what the writer may change of a segment (a suffix
// truncation reopens a closed one), read under Log.mu.
type closedSpan struct {
	size, next int64
	lastIndex  uint64
}

// closedSegment finds the closed segment whose .log file is named name.
func (l *Log) closedSegment(name string) (*segment, closedSpan, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.mu.closed {
		return nil, closedSpan{}, ErrClosed
	}
	for _, s := range l.mu.segs {
		if s.name == name {
			if s.active {
				return nil, closedSpan{}, fmt.Errorf("segment: %s is the active segment", name)
			}
			return s, closedSpan{size: s.size, next: s.next, lastIndex: s.lastIndex}, nil
		}
	}
	return nil, closedSpan{}, fmt.Errorf("segment: no segment %s", name)
}
