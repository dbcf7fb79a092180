package segment

import (
	"fmt"
	"io"
	"sort"

	"github.com/stratalog/strata/pkg/record"
)

// Read returns whole stored batches, concatenated as Kafka bytes (frames
// stripped, raft entries skipped), starting with the batch that holds
// offset and taking only batches whose base offset is below maxOffset (the
// caller's high watermark). It stops before exceeding maxBytes, except that
// the first batch is always returned whole. The returned slice is the
// caller's.
//
// offset == maxOffset or offset == NextOffset returns (nil, nil); an offset
// below StartOffset or above NextOffset returns an *OutOfRangeError. Every
// frame read is checked against its CRC; damage returns *CorruptionError.
func (l *Log) Read(offset, maxOffset int64, maxBytes int) ([]byte, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.mu.closed {
		return nil, ErrClosed
	}
	start, next := l.mu.start, l.mu.next
	if offset < start || offset > next {
		return nil, &OutOfRangeError{Offset: offset, Start: start, End: next}
	}
	if offset >= maxOffset || offset == next {
		return nil, nil
	}
	segs := l.mu.segs
	var out []byte
	for i := l.segmentFor(offset); i < len(segs); i++ {
		s := segs[i]
		if s.base >= maxOffset {
			break
		}
		pos, err := l.seekOffset(s, offset)
		if err != nil {
			return nil, err
		}
		fr := s.reader(pos, s.size)
		if out == nil {
			// Sized for the common case, not for a huge maxBytes.
			out = make([]byte, 0, max(min(int64(maxBytes), s.size-pos, 1<<20), 0))
		}
		for {
			n := len(out)
			h, err := fr.header()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, err
			}
			if h.typ == EntryBatch && n > 0 && n+int(h.length) > maxBytes {
				return out, nil // the next batch would not fit: not read at all
			}
			h, buf, err := fr.payload(h, out)
			if err != nil {
				return nil, err
			}
			out = buf[:n]
			if h.typ == EntryRaft {
				continue
			}
			bh, cerr := s.batchAt(fr, h, buf[n:])
			if cerr != nil {
				return nil, cerr
			}
			if bh.NextOffset() <= offset {
				continue
			}
			if bh.BaseOffset >= maxOffset || (n > 0 && len(buf) > maxBytes) {
				return out, nil
			}
			out = buf
			if len(out) >= maxBytes {
				return out, nil
			}
		}
	}
	return out, nil
}

// batchAt decodes the header of the batch frame just read by fr.
func (s *segment) batchAt(fr *frameReader, h frameHeader, payload []byte) (record.BatchHeader, *CorruptionError) {
	pos := fr.pos - frameHeaderSize - int64(h.length)
	if h.typ != EntryBatch {
		return record.BatchHeader{}, s.corrupt(pos, "unknown entry type %d", h.typ)
	}
	bh, err := checkBatch(payload)
	if err != nil {
		return bh, s.corrupt(pos, "%v", err)
	}
	return bh, nil
}

// segmentFor returns the index of the segment holding offset (caller holds
// mu; offset is within [start, next)).
func (l *Log) segmentFor(offset int64) int {
	segs := l.mu.segs
	return max(sort.Search(len(segs), func(i int) bool { return segs[i].base > offset })-1, 0)
}

// seekOffset returns the position from which a scan reaches the batch
// holding offset.
func (l *Log) seekOffset(s *segment, offset int64) (int64, error) {
	idx, _, err := s.indexes(l.opts.IndexIntervalBytes)
	if err != nil || len(idx) == 0 || offset <= s.base {
		return fileHeaderSize, err
	}
	return int64(lookupOffset(idx, s.rel(offset)).pos), nil
}

// ReadEntry returns the entry with raft index index, its Data a fresh
// slice. It returns an error wrapping ErrIndexNotFound outside
// [FirstIndex, LastIndex].
func (l *Log) ReadEntry(index uint64) (Entry, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.mu.closed {
		return Entry{}, ErrClosed
	}
	segs := l.mu.segs
	if !l.hasEntries() || index < segs[0].baseIndex || index > segs[len(segs)-1].lastIndex {
		return Entry{}, fmt.Errorf("%w: %d", ErrIndexNotFound, index)
	}
	s := segs[max(sort.Search(len(segs), func(i int) bool { return segs[i].baseIndex > index })-1, 0)]
	idx, _, err := s.indexes(l.opts.IndexIntervalBytes)
	if err != nil {
		return Entry{}, err
	}
	pos := int64(fileHeaderSize)
	if len(idx) > 0 {
		pos = int64(lookupIndex(idx, uint32(index-s.baseIndex)).pos)
	}
	// The frame sought lies within about one index interval of pos: read
	// ahead that far, not a bulk read's 64 KiB. Raft reads the log entry by
	// entry (at start, every entry since its snapshot; a follower applying
	// what it missed, each of those), and a 64 KiB read and allocation per
	// 1 KiB entry made opening a 50 MB log take seconds.
	fr := s.readerSize(pos, s.size, entryReadAhead(l.opts.IndexIntervalBytes))
	var buf []byte
	for {
		p := fr.pos
		h, payload, err := fr.next(buf[:0])
		if err == io.EOF {
			return Entry{}, s.corrupt(p, "raft index %d missing", index)
		}
		if err != nil {
			return Entry{}, err
		}
		buf = payload
		switch {
		case h.index == index:
			return Entry{Index: h.index, Term: h.term, Type: h.typ, Data: append([]byte(nil), payload...)}, nil
		case h.index > index:
			return Entry{}, s.corrupt(p, "raft index %d found looking for %d", h.index, index)
		}
	}
}

// ReadEntries returns consecutive entries from raft index from on, their
// Data fresh slices: at least one, then more while their Data totals under
// maxBytes, within from's segment. It is ReadEntry for a reader that goes
// on to the next indexes (raft's scan of its log at start, a follower
// applying what it missed, a leader sending it): one read of the file for
// many entries. Rewrites is the log's count of rewrites at the time of the
// read: the entries are still the log's while it has not changed. Errors
// are ReadEntry's.
func (l *Log) ReadEntries(from uint64, maxBytes int) (entries []Entry, rewrites uint64, err error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.mu.closed {
		return nil, 0, ErrClosed
	}
	segs := l.mu.segs
	if !l.hasEntries() || from < segs[0].baseIndex || from > segs[len(segs)-1].lastIndex {
		return nil, 0, fmt.Errorf("%w: %d", ErrIndexNotFound, from)
	}
	s := segs[max(sort.Search(len(segs), func(i int) bool { return segs[i].baseIndex > from })-1, 0)]
	idx, _, err := s.indexes(l.opts.IndexIntervalBytes)
	if err != nil {
		return nil, 0, err
	}
	pos := int64(fileHeaderSize)
	if len(idx) > 0 {
		pos = int64(lookupIndex(idx, uint32(from-s.baseIndex)).pos)
	}
	fr := s.reader(pos, s.size)
	var buf []byte
	for size := 0; size < maxBytes; {
		want := from + uint64(len(entries))
		if want > s.lastIndex {
			break
		}
		p := fr.pos
		h, payload, err := fr.next(buf[:0])
		if err == io.EOF {
			err = s.corrupt(p, "raft index %d missing", want)
		} else if err == nil && h.index > want {
			err = s.corrupt(p, "raft index %d found looking for %d", h.index, want)
		}
		if err != nil {
			if len(entries) > 0 {
				break // the read of want meets it again and reports it
			}
			return nil, 0, err
		}
		buf = payload
		if h.index < want {
			continue
		}
		entries = append(entries, Entry{Index: h.index, Term: h.term, Type: h.typ, Data: append([]byte(nil), payload...)})
		size += len(payload)
	}
	return entries, l.mu.rewrites, nil
}

// Rewrites is the log's count of changes to entries already written; see
// ReadEntries.
func (l *Log) Rewrites() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.mu.rewrites
}

// entryReadAhead is ReadEntry's read-ahead for a sparse index of one entry
// per interval bytes: the interval plus a typical frame, so that one read
// usually reaches the frame sought. A larger frame is read past the buffer.
func entryReadAhead(interval int) int {
	return min(max(interval+4<<10, 8<<10), 64<<10)
}

// OffsetForTimestamp returns the base offset of the first batch below
// maxOffset whose max timestamp is >= ts (never below StartOffset), and
// found=false if there is none. Finding the exact first record would mean
// decoding the batch; a consumer starting at the batch skips the rest.
func (l *Log) OffsetForTimestamp(ts int64, maxOffset int64) (offset int64, found bool, err error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.mu.closed {
		return 0, false, ErrClosed
	}
	start, segs := l.mu.start, l.mu.segs
	if start >= l.mu.next {
		return 0, false, nil
	}
	for i := l.segmentFor(start); i < len(segs); i++ {
		s := segs[i]
		if s.base >= maxOffset {
			break
		}
		if s.maxTs < ts {
			continue
		}
		_, times, err := s.indexes(l.opts.IndexIntervalBytes)
		if err != nil {
			return 0, false, err
		}
		pos, err := l.seekOffset(s, max(s.base+int64(lookupTime(times, ts)), start))
		if err != nil {
			return 0, false, err
		}
		fr := s.reader(pos, s.size)
		var buf []byte
		for {
			h, payload, err := fr.next(buf[:0])
			if err == io.EOF {
				break
			}
			if err != nil {
				return 0, false, err
			}
			buf = payload
			if h.typ == EntryRaft {
				continue
			}
			bh, cerr := s.batchAt(fr, h, payload)
			if cerr != nil {
				return 0, false, cerr
			}
			switch {
			case bh.BaseOffset >= maxOffset:
				return 0, false, nil
			case bh.NextOffset() <= start || bh.MaxTimestamp < ts:
				continue
			}
			return max(bh.BaseOffset, start), true, nil
		}
	}
	return 0, false, nil
}

// Verify checks every segment frame by frame: lengths, CRCs, contiguous
// raft indexes and offsets, and that each segment ends where the next
// begins. It returns the first damage as a *CorruptionError. It reads the
// whole log while holding off the writer's bookkeeping; it is meant for
// tools and tests.
func (l *Log) Verify() error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.mu.closed {
		return ErrClosed
	}
	for _, s := range l.mu.segs {
		lim := scanLimits{end: s.size}
		if !s.active {
			lim.nextOffset = s.next
		}
		res, cerr, err := s.scan(l.opts.IndexIntervalBytes, lim)
		if err != nil {
			return err
		}
		if cerr != nil {
			return cerr
		}
		if res.pos != s.size || res.next != s.next || res.lastIndex != s.lastIndex {
			return s.corrupt(res.pos, "segment ends at offset %d, raft index %d; want %d, %d",
				res.next, res.lastIndex, s.next, s.lastIndex)
		}
	}
	return nil
}
