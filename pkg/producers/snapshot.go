package producers

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
)

// The snapshot format: a State as of End, big-endian. Every constant here
// is part of the format (docs/format/producer-state.md mirrors it).
//
//	header (40 bytes)
//	0               4       5         8                16              24              32          36          40
//	+---------------+-------+---------+----------------+---------------+---------------+-----------+-----------+
//	| magic "SPS1"  | ver 1 | 0 0 0   | end (i64)      | clock (i64)   | swept (i64)   | count u32 | 0 (u32)   |
//	+---------------+-------+---------+----------------+---------------+---------------+-----------+-----------+
//
//	count producers, in increasing id order, each
//	+-----------+-----------+----------+------------------+-----------------------------------------+
//	| id (i64)  | epoch i16 | n (u8)   | last write (i64) | n × { first seq i32, last seq i32,      |
//	|           |           | ≤ 5      |                  |       base i64, last i64 } (24 bytes)   |
//	+-----------+-----------+----------+------------------+-----------------------------------------+
//	  19 bytes + 24·n
//
//	trailer: CRC-32C (Castagnoli) of every byte before it, u32
//
// The remembered batches are in log order, oldest first. A decoder refuses
// anything else: a wrong magic, version or length, ids out of order, n
// above Remembered, offsets that go backwards, or a CRC mismatch.
const (
	snapMagic      = "SPS1"
	snapVersion    = 1
	snapHeaderSize = 40
	snapProducer   = 19
	snapBatch      = 24
	snapTrailer    = 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt: a snapshot is not one this package wrote, or was damaged.
// Not retriable: rebuild the state from the log instead.
var ErrCorrupt = errors.New("producers: corrupt snapshot")

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// Encode returns the snapshot of s (layout above). The same state always
// encodes to the same bytes.
func (s *State) Encode() []byte {
	ids := make([]ID, 0, len(s.byID))
	size := snapHeaderSize + snapTrailer
	for id, e := range s.byID {
		ids = append(ids, id)
		size += snapProducer + snapBatch*len(e.batches)
	}
	slices.Sort(ids)
	be := binary.BigEndian
	b := make([]byte, 0, size)
	b = append(b, snapMagic...)
	b = append(b, snapVersion, 0, 0, 0)
	b = be.AppendUint64(b, uint64(s.end))
	b = be.AppendUint64(b, uint64(s.clock))
	b = be.AppendUint64(b, uint64(s.swept))
	b = be.AppendUint32(b, uint32(len(ids)))
	b = be.AppendUint32(b, 0)
	for _, id := range ids {
		e := s.byID[id]
		b = be.AppendUint64(b, uint64(id))
		b = be.AppendUint16(b, uint16(e.epoch))
		b = append(b, byte(len(e.batches)))
		b = be.AppendUint64(b, uint64(e.lastWrite))
		for _, st := range e.batches {
			b = be.AppendUint32(b, uint32(st.firstSeq))
			b = be.AppendUint32(b, uint32(st.lastSeq))
			b = be.AppendUint64(b, uint64(st.base))
			b = be.AppendUint64(b, uint64(st.last))
		}
	}
	return be.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// Decode returns the state a snapshot holds, forgetting producers idle
// for expiry ms (as New). It never panics on bad input; any damage is
// ErrCorrupt.
func Decode(b []byte, expiry int64) (*State, error) {
	if len(b) < snapHeaderSize+snapTrailer {
		return nil, corrupt("%d bytes, shorter than a header and trailer", len(b))
	}
	be := binary.BigEndian
	body := b[:len(b)-snapTrailer]
	if got, want := crc32.Checksum(body, castagnoli), be.Uint32(b[len(body):]); got != want {
		return nil, corrupt("checksum %08x, stored %08x", got, want)
	}
	if string(b[:4]) != snapMagic || b[4] != snapVersion || b[5]|b[6]|b[7] != 0 {
		return nil, corrupt("magic or version %q", b[:8])
	}
	s := New(expiry)
	s.end = int64(be.Uint64(b[8:]))
	s.clock = int64(be.Uint64(b[16:]))
	s.swept = int64(be.Uint64(b[24:]))
	count := be.Uint32(b[32:])
	if be.Uint32(b[36:]) != 0 {
		return nil, corrupt("reserved header bytes set")
	}
	rest := body[snapHeaderSize:]
	if uint64(count)*snapProducer > uint64(len(rest)) {
		return nil, corrupt("%d producers cannot fit in %d bytes", count, len(rest))
	}
	prev := ID(0)
	for i := range count {
		if len(rest) < snapProducer {
			return nil, corrupt("producer %d of %d cut short", i, count)
		}
		id := ID(be.Uint64(rest))
		if i > 0 && id <= prev {
			return nil, corrupt("producer ids out of order: %d after %d", id, prev)
		}
		if id == NoID {
			return nil, corrupt("producer id %d is the no-producer id", id)
		}
		prev = id
		e := &entry{epoch: Epoch(be.Uint16(rest[8:])), lastWrite: int64(be.Uint64(rest[11:]))}
		n := int(rest[10])
		rest = rest[snapProducer:]
		if n == 0 || n > Remembered || len(rest) < n*snapBatch {
			return nil, corrupt("producer %d: %d batches (want 1-%d) in %d bytes", id, n, Remembered, len(rest))
		}
		for j := range n {
			st := stored{
				firstSeq: int32(be.Uint32(rest)),
				lastSeq:  int32(be.Uint32(rest[4:])),
				base:     int64(be.Uint64(rest[8:])),
				last:     int64(be.Uint64(rest[16:])),
			}
			rest = rest[snapBatch:]
			if st.firstSeq < 0 || st.lastSeq < 0 || st.base < 0 || st.last < st.base || st.last >= s.end ||
				(j > 0 && st.base <= e.batches[j-1].last) {
				return nil, corrupt("producer %d: batch %d: sequences %d-%d at offsets %d-%d", id, j, st.firstSeq, st.lastSeq, st.base, st.last)
			}
			e.batches = append(e.batches, st)
		}
		s.byID[id] = e
	}
	if len(rest) != 0 {
		return nil, corrupt("%d bytes after the last producer", len(rest))
	}
	return s, nil
}
