package segment

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/stratalog/strata/pkg/record"
)

// segment is one .log file and its indexes. Its fields other than those of
// idx are written only by the writer goroutine, under Log.mu; readers read
// them under Log.mu.RLock.
type segment struct {
	path      string // file path without suffix
	name      string // .log file name, for errors
	base      int64  // base offset (file name and header)
	baseIndex uint64 // base raft index (header)
	f         *os.File
	created   time.Time

	size      int64  // bytes of valid frames, file header included
	next      int64  // offset after its last batch
	lastIndex uint64 // baseIndex-1 when it holds no frame
	maxTs     int64  // -1 when it holds no batch
	hasBatch  bool

	// active: the writer appends here; w is its complete in-memory index.
	active bool
	w      indexer

	// idx is the index of a closed segment, loaded on first use (see load).
	idx struct {
		sync.Mutex
		loaded bool
		index  []indexEntry
		times  []timeEntry
	}
}

func segmentPath(dir string, base int64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d", base))
}

func (s *segment) frames() uint64 { return s.lastIndex + 1 - s.baseIndex }

// rel converts an offset to the segment's relative offset.
func (s *segment) rel(off int64) uint32 { return uint32(off - s.base) }

func (s *segment) corrupt(pos int64, format string, args ...any) *CorruptionError {
	return &CorruptionError{Segment: s.name, Offset: pos, Err: fmt.Errorf(format, args...)}
}

// indexes returns the segment's offset and time indexes: the writer's for
// the active segment (caller holds Log.mu), else the loaded ones.
func (s *segment) indexes(interval int) ([]indexEntry, []timeEntry, error) {
	if s.active {
		return s.w.index, s.w.times, nil
	}
	return s.load(interval)
}

// load reads a closed segment's index files once, checks them fully and
// keeps them in memory. Loading lazily, not at Open, keeps a restart with
// many segments to one stat and three small reads per segment; most closed
// segments are never read again. Index files that fail the check are
// rebuilt in memory by scanning the segment (not an error: they are derived
// data); damage found by that scan is reported by the read that meets it.
func (s *segment) load(interval int) ([]indexEntry, []timeEntry, error) {
	s.idx.Lock()
	defer s.idx.Unlock()
	if s.idx.loaded {
		return s.idx.index, s.idx.times, nil
	}
	idx, times, err := readIndexFiles(s.path, s.size, s.rel(s.next))
	if err != nil {
		res, cerr, serr := s.scan(interval, scanLimits{end: s.size, nextOffset: s.next})
		if serr != nil {
			return nil, nil, serr
		}
		if cerr == nil {
			res.finish(s.rel(s.next))
		}
		idx, times = res.index, res.times
	}
	s.idx.loaded, s.idx.index, s.idx.times = true, idx, times
	return idx, times, nil
}

func readIndexFiles(path string, logSize int64, relNext uint32) ([]indexEntry, []timeEntry, error) {
	b, err := os.ReadFile(path + indexSuffix)
	if err != nil {
		return nil, nil, err
	}
	idx, err := decodeIndex(b)
	if err == nil {
		err = checkIndex(idx, logSize)
	}
	if err != nil {
		return nil, nil, err
	}
	b, err = os.ReadFile(path + timeIndexSuffix)
	if err != nil {
		return nil, nil, err
	}
	times, err := decodeTimes(b)
	if err == nil {
		err = checkTimes(times, relNext)
	}
	return idx, times, err
}

// frameReader reads frames sequentially from a segment file with pread,
// checking each one's length bound and CRC.
type frameReader struct {
	s   *segment
	r   *bufio.Reader
	pos int64 // position of the next frame
	end int64
	hdr [frameHeaderSize]byte
}

func (s *segment) reader(pos, end int64) *frameReader {
	return s.readerSize(pos, end, 64<<10)
}

// readerSize is reader with a read-ahead of at most bufSize bytes: a scan
// reads far ahead, a lookup of one frame only as far as it will look.
func (s *segment) readerSize(pos, end int64, bufSize int) *frameReader {
	n := min(max(end-pos, 16), int64(bufSize))
	return &frameReader{s: s, r: bufio.NewReaderSize(io.NewSectionReader(s.f, pos, end-pos), int(n)), pos: pos, end: end}
}

// next reads the frame at fr.pos, appending its payload to dst. It returns
// io.EOF exactly at end, a *CorruptionError for a short, oversized or
// mismatching frame, or an I/O error.
func (fr *frameReader) next(dst []byte) (frameHeader, []byte, error) {
	h, err := fr.header()
	if err != nil {
		return h, dst, err
	}
	return fr.payload(h, dst)
}

// header reads and bounds-checks the header of the frame at fr.pos; the
// caller then calls payload.
func (fr *frameReader) header() (frameHeader, error) {
	if fr.pos == fr.end {
		return frameHeader{}, io.EOF
	}
	if fr.end-fr.pos < frameHeaderSize {
		return frameHeader{}, fr.s.corrupt(fr.pos, "torn frame header: %d bytes left", fr.end-fr.pos)
	}
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		return frameHeader{}, fmt.Errorf("read %s at %d: %w", fr.s.name, fr.pos, noEOF(err))
	}
	h := parseFrameHeader(fr.hdr[:])
	if h.length > MaxEntryBytes {
		return h, fr.s.corrupt(fr.pos, "frame length %d exceeds %d", h.length, MaxEntryBytes)
	}
	if left := fr.end - fr.pos - frameHeaderSize; int64(h.length) > left {
		return h, fr.s.corrupt(fr.pos, "torn frame: length %d, %d bytes left", h.length, left)
	}
	return h, nil
}

// payload reads the payload of the frame whose header was just read,
// appending it to dst, and checks the frame's CRC.
func (fr *frameReader) payload(h frameHeader, dst []byte) (frameHeader, []byte, error) {
	n := len(dst)
	dst = append(dst, make([]byte, h.length)...)
	if _, err := io.ReadFull(fr.r, dst[n:]); err != nil {
		return h, dst[:n], fmt.Errorf("read %s at %d: %w", fr.s.name, fr.pos, noEOF(err))
	}
	if got := frameCRC(fr.hdr[:], dst[n:]); got != h.crc {
		return h, dst[:n], fr.s.corrupt(fr.pos, "frame CRC %08x, computed %08x", h.crc, got)
	}
	fr.pos += frameHeaderSize + int64(h.length)
	return h, dst, nil
}

// A file shorter than its recorded size is an I/O problem, not EOF.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// scanLimits bounds a scan: stop before end, or at the frame with raft
// index stopIndex (when not 0). nextOffset, when not 0, is the segment's
// known next offset, which a closed segment's batches must stay below.
type scanLimits struct {
	end        int64
	stopIndex  uint64
	nextOffset int64
}

// scanResult is what a scan learned: the state of the segment up to pos.
type scanResult struct {
	indexer
	pos       int64 // end of the last good frame
	next      int64
	lastIndex uint64
}

// scan walks the segment's frames from the first, checking each (CRC, type,
// contiguous raft index, batch framing, offsets), and rebuilds its indexes.
// It stops at lim.end, at lim.stopIndex, or at the first bad frame, which
// it returns as a *CorruptionError alongside the state before it.
func (s *segment) scan(interval int, lim scanLimits) (scanResult, *CorruptionError, error) {
	res := scanResult{indexer: newIndexer(interval), pos: fileHeaderSize, next: s.base, lastIndex: s.baseIndex - 1}
	fr := s.reader(fileHeaderSize, lim.end)
	var buf []byte
	for {
		if lim.stopIndex != 0 && res.lastIndex+1 == lim.stopIndex {
			return res, nil, nil
		}
		h, payload, err := fr.next(buf[:0])
		buf = payload
		if err == io.EOF {
			return res, nil, nil
		}
		var cerr *CorruptionError
		if errors.As(err, &cerr) {
			return res, cerr, nil
		}
		if err != nil {
			return res, nil, err
		}
		if cerr := s.checkFrame(res.pos, h, payload, res.lastIndex+1, res.next, lim.nextOffset); cerr != nil {
			return res, cerr, nil
		}
		isBatch, ts, next := h.typ == EntryBatch, int64(0), res.next
		if isBatch {
			bh, _ := record.ParseHeader(payload)
			ts, next = bh.MaxTimestamp, bh.NextOffset()
		}
		res.add(res.pos, s.rel(res.next), uint32(h.index-s.baseIndex), frameHeaderSize+int64(h.length), isBatch, ts)
		res.pos, res.next, res.lastIndex = fr.pos, next, h.index
	}
}

// checkFrame checks what the CRC cannot: that a frame is where the log's
// invariants say it must be.
func (s *segment) checkFrame(pos int64, h frameHeader, payload []byte, wantIndex uint64, wantOffset, limit int64) *CorruptionError {
	if h.index != wantIndex {
		return s.corrupt(pos, "raft index %d, want %d", h.index, wantIndex)
	}
	if wantIndex-s.baseIndex > 1<<32-1 {
		return s.corrupt(pos, "raft index %d too far from base %d", h.index, s.baseIndex)
	}
	switch h.typ {
	case EntryRaft:
		return nil
	case EntryBatch:
	default:
		return s.corrupt(pos, "unknown entry type %d", h.typ)
	}
	bh, err := checkBatch(payload)
	if err != nil {
		return s.corrupt(pos, "%v", err)
	}
	if bh.BaseOffset != wantOffset {
		return s.corrupt(pos, "batch base offset %d, want %d", bh.BaseOffset, wantOffset)
	}
	next := bh.NextOffset()
	if next-s.base > 1<<32-1 || (limit != 0 && next > limit) {
		return s.corrupt(pos, "batch offsets [%d, %d) beyond the segment", bh.BaseOffset, next)
	}
	return nil
}

// checkBatch checks the framing Append relies on: one whole batch whose
// record count fits its last offset delta. It occupies LastOffsetDelta+1
// offsets; its record count is that (as a producer writes it) or fewer,
// possibly 0, once compacted (see record.Filter). Compacted batches reach
// Append too: a follower stores what the leader's log holds.
func checkBatch(b []byte) (record.BatchHeader, error) {
	h, err := record.ParseHeader(b)
	if err != nil {
		return h, err
	}
	if h.Size() != len(b) {
		return h, fmt.Errorf("batch length says %d bytes, %d present", h.Size(), len(b))
	}
	if h.LastOffsetDelta < 0 || h.RecordCount < 0 || int64(h.RecordCount) > int64(h.LastOffsetDelta)+1 {
		return h, fmt.Errorf("record count %d, last offset delta %d", h.RecordCount, h.LastOffsetDelta)
	}
	return h, nil
}
