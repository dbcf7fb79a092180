package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sort"
)

// indexEntry locates one frame: see the .index drawing in format.go.
type indexEntry struct {
	relOffset uint32
	relIndex  uint32
	pos       uint32
}

// timeEntry is one .timeindex entry: see format.go.
type timeEntry struct {
	maxTs     int64
	relOffset uint32
}

// indexer builds a segment's sparse indexes frame by frame. The writer and
// every rebuild (recovery, a missing .index) run the same rules, so a
// rebuilt index is byte for byte the one the writer would have made.
type indexer struct {
	interval int64
	since    int64 // frame bytes since the last index entry's frame began
	index    []indexEntry
	times    []timeEntry
	maxTs    int64 // max batch timestamp so far; -1 (Kafka's "none") before any
	hasBatch bool
}

func newIndexer(interval int) indexer {
	return indexer{interval: int64(interval), maxTs: -1}
}

// add records the frame at pos, starting at relative offset relOff with
// relative raft index relIdx, of frameLen bytes. batchTs is the batch's max
// timestamp when isBatch.
func (ix *indexer) add(pos int64, relOff, relIdx uint32, frameLen int64, isBatch bool, batchTs int64) {
	if len(ix.index) == 0 || ix.since >= ix.interval {
		ix.index = append(ix.index, indexEntry{relOffset: relOff, relIndex: relIdx, pos: uint32(pos)})
		ix.since = 0
		ix.addTime(relOff)
	}
	ix.since += frameLen
	if isBatch {
		ix.hasBatch = true
		ix.maxTs = max(ix.maxTs, batchTs)
	}
}

// addTime appends a time entry if the max timestamp grew since the last.
func (ix *indexer) addTime(relOff uint32) {
	if !ix.hasBatch {
		return
	}
	if n := len(ix.times); n > 0 && ix.times[n-1].maxTs >= ix.maxTs {
		return
	}
	ix.times = append(ix.times, timeEntry{maxTs: ix.maxTs, relOffset: relOff})
}

// finish appends the final time entry of a segment being rolled: (max
// timestamp, relative next offset), so that the last entry of a closed
// segment holds its max timestamp and says where the segment ends (which
// Open's quick check compares with the next segment's base offset).
func (ix *indexer) finish(relNext uint32) {
	if n := len(ix.times); n > 0 && ix.times[n-1] == (timeEntry{ix.maxTs, relNext}) {
		return
	}
	ix.times = append(ix.times, timeEntry{maxTs: ix.maxTs, relOffset: relNext})
}

// lookupOffset returns the last entry whose relative offset is <= rel (or
// the first entry). Scanning forward from its frame reaches the batch
// holding rel: every frame before it starts at or below its offset.
func lookupOffset(idx []indexEntry, rel uint32) indexEntry {
	i := sort.Search(len(idx), func(i int) bool { return idx[i].relOffset > rel })
	return idx[max(i-1, 0)]
}

// lookupIndex returns the last entry whose relative raft index is <= rel.
func lookupIndex(idx []indexEntry, rel uint32) indexEntry {
	i := sort.Search(len(idx), func(i int) bool { return idx[i].relIndex > rel })
	return idx[max(i-1, 0)]
}

// lookupTime returns the relative offset from which to scan for the first
// batch with a max timestamp >= ts: the batches before the last entry with
// a smaller timestamp are all too old.
func lookupTime(times []timeEntry, ts int64) uint32 {
	i := sort.Search(len(times), func(i int) bool { return times[i].maxTs >= ts })
	if i == 0 {
		return 0
	}
	return times[i-1].relOffset
}

func encodeIndex(idx []indexEntry) []byte {
	b := make([]byte, 0, len(idx)*indexEntrySize)
	for _, e := range idx {
		b = binary.BigEndian.AppendUint32(b, e.relOffset)
		b = binary.BigEndian.AppendUint32(b, e.relIndex)
		b = binary.BigEndian.AppendUint32(b, e.pos)
	}
	return b
}

func encodeTimes(times []timeEntry) []byte {
	b := make([]byte, 0, len(times)*timeEntrySize)
	for _, e := range times {
		b = binary.BigEndian.AppendUint64(b, uint64(e.maxTs))
		b = binary.BigEndian.AppendUint32(b, e.relOffset)
	}
	return b
}

var errIndexSize = errors.New("size is not a multiple of 12")

// decodeIndex decodes .index bytes without judging them (see checkIndex).
func decodeIndex(b []byte) ([]indexEntry, error) {
	if len(b)%indexEntrySize != 0 {
		return nil, errIndexSize
	}
	idx := make([]indexEntry, len(b)/indexEntrySize)
	for i := range idx {
		e := b[i*indexEntrySize:]
		idx[i] = indexEntry{
			relOffset: binary.BigEndian.Uint32(e),
			relIndex:  binary.BigEndian.Uint32(e[4:]),
			pos:       binary.BigEndian.Uint32(e[8:]),
		}
	}
	return idx, nil
}

// decodeTimes decodes .timeindex bytes without judging them.
func decodeTimes(b []byte) ([]timeEntry, error) {
	if len(b)%timeEntrySize != 0 {
		return nil, errIndexSize
	}
	times := make([]timeEntry, len(b)/timeEntrySize)
	for i := range times {
		e := b[i*timeEntrySize:]
		times[i] = timeEntry{maxTs: int64(binary.BigEndian.Uint64(e)), relOffset: binary.BigEndian.Uint32(e[8:])}
	}
	return times, nil
}

// checkIndex is the full check of a closed segment's loaded index against
// its .log size: the first entry is the first frame, and entries advance.
// Anything it accepts is safe to binary-search and seek by: a wrong but
// well-ordered entry only makes a scan meet a CRC failure.
func checkIndex(idx []indexEntry, logSize int64) error {
	if len(idx) == 0 {
		return errors.New("empty index")
	}
	if idx[0] != (indexEntry{pos: fileHeaderSize}) {
		return fmt.Errorf("first entry %+v is not the first frame", idx[0])
	}
	for i := 1; i < len(idx); i++ {
		p, e := idx[i-1], idx[i]
		if e.pos <= p.pos || e.relIndex <= p.relIndex || e.relOffset < p.relOffset {
			return fmt.Errorf("entry %d %+v does not follow %+v", i, e, p)
		}
	}
	if int64(idx[len(idx)-1].pos)+frameHeaderSize > logSize {
		return fmt.Errorf("last entry at %d is beyond the log's %d bytes", idx[len(idx)-1].pos, logSize)
	}
	return nil
}

// checkTimes is the full check of a closed segment's time index: entries
// advance, and the last is the final one written on roll.
func checkTimes(times []timeEntry, relNext uint32) error {
	if len(times) == 0 {
		return errors.New("empty time index")
	}
	for i := 1; i < len(times); i++ {
		if times[i].maxTs < times[i-1].maxTs || times[i].relOffset < times[i-1].relOffset || times[i] == times[i-1] {
			return fmt.Errorf("time entry %d %+v does not follow %+v", i, times[i], times[i-1])
		}
	}
	if last := times[len(times)-1]; last.relOffset != relNext {
		return fmt.Errorf("last time entry %+v does not end the segment at %d", last, relNext)
	}
	return nil
}

// quickCheck is the cheap check Open runs on a closed segment's index
// files: sizes, the first and the last entry of each. It reads 36 bytes,
// not the files, so that opening a log with many segments stays fast; the
// full checks run when the index is first needed. It returns the segment's
// max timestamp (the last time entry).
func quickCheck(idxFile, timeFile *os.File, logSize int64, relNext uint32) (maxTs int64, err error) {
	si, err := idxFile.Stat()
	if err != nil {
		return 0, err
	}
	st, err := timeFile.Stat()
	if err != nil {
		return 0, err
	}
	if si.Size() == 0 || si.Size()%indexEntrySize != 0 || st.Size() == 0 || st.Size()%timeEntrySize != 0 {
		return 0, fmt.Errorf("index sizes %d and %d", si.Size(), st.Size())
	}
	var b [indexEntrySize]byte
	if _, err := idxFile.ReadAt(b[:], 0); err != nil {
		return 0, err
	}
	first, _ := decodeIndex(b[:])
	if _, err := idxFile.ReadAt(b[:], si.Size()-indexEntrySize); err != nil {
		return 0, err
	}
	last, _ := decodeIndex(b[:])
	if err := checkIndex([]indexEntry{first[0]}, logSize); err != nil {
		return 0, err
	}
	if int64(last[0].pos) < fileHeaderSize || int64(last[0].pos)+frameHeaderSize > logSize {
		return 0, fmt.Errorf("last index entry at %d is outside the log's %d bytes", last[0].pos, logSize)
	}
	if _, err := timeFile.ReadAt(b[:], st.Size()-timeEntrySize); err != nil {
		return 0, err
	}
	times, _ := decodeTimes(b[:])
	if times[0].relOffset != relNext {
		return 0, fmt.Errorf("last time entry %+v does not end the segment at %d", times[0], relNext)
	}
	return times[0].maxTs, nil
}

// writeIndexFiles replaces a segment's index files, fsyncing them when
// sync is set.
func writeIndexFiles(base string, ix *indexer, sync bool) error {
	if err := writeFile(base+indexSuffix, encodeIndex(ix.index), sync); err != nil {
		return err
	}
	return writeFile(base+timeIndexSuffix, encodeTimes(ix.times), sync)
}

func writeFile(name string, b []byte, sync bool) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
