package segment

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// The on-disk format. Every constant in this file is part of it: changing
// one makes every stored log unreadable. All integers are big-endian.
//
// A log is a directory:
//
//	00000000000000000000.log        segment with base offset 0
//	00000000000000000000.index      its sparse offset/raft-index index
//	00000000000000000000.timeindex  its sparse time index
//	00000000000000004096.log        next segment, base offset 4096
//	...
//	start-offset                    logical start offset (after TruncatePrefix)
//	cleaner-offset                  offset below which the log is compacted
//	00000000000000000000.log.cleaned  a compacted segment being written
//	00000000000000000000.log.swap     ... committed, being swapped in
//
// (see compact.go and swap.go for the cleaner's files and protocol).
//
// .log file: a 24-byte file header, then frames back to back.
//
//	0      4   5         8                16                24
//	+------+---+---------+----------------+----------------+
//	|"SSEG"| 1 | 0 0 0   | base offset    | base raft index|
//	| magic|ver| reserved| i64            | u64            |
//	+------+---+---------+----------------+----------------+
//
// frame: a 28-byte header, then the payload.
//
//	0        4        8                16               24  25      28
//	+--------+--------+----------------+----------------+---+-------+--------- - -
//	| length | crc32c | raft index     | raft term      |typ| 0 0 0 | payload
//	| u32    | u32    | u64            | u64            |u8 | rsvd  | (length bytes)
//	+--------+--------+----------------+----------------+---+-------+--------- - -
//
// length counts the payload only. crc32c is CRC-32C (Castagnoli) over frame
// bytes 8..28 followed by the payload, so a torn, truncated or bit-flipped
// frame fails it (a torn length field makes the CRC cover the wrong bytes).
// type is 1 (EntryBatch: the payload is one Kafka RecordBatch v2, see
// pkg/record/batch.go, whose base offset the log assigned) or 2 (EntryRaft:
// opaque raft-internal data, occupying no offsets). A length above
// MaxEntryBytes is corruption: no writer produces one.
//
// .index file: 12-byte entries, one for the segment's first frame and then
// one per IndexIntervalBytes of frames (the entry goes on the first frame
// that starts at least IndexIntervalBytes after the previous entry's frame).
//
//	0             4             8             12
//	+-------------+-------------+-------------+
//	| rel. offset | rel. index  | position    |
//	| u32         | u32         | u32         |
//	+-------------+-------------+-------------+
//
// rel. offset is the offset the frame starts at minus the base offset (for a
// raft frame: the offset the next batch will get); rel. index is the frame's
// raft index minus the base raft index; position is the frame's position in
// the .log file. rel. index and position strictly increase from entry to
// entry; rel. offset never decreases.
//
// .timeindex file: 12-byte entries.
//
//	0                           8             12
//	+---------------------------+-------------+
//	| max timestamp (unix ms)   | rel. offset |
//	| i64                       | u32         |
//	+---------------------------+-------------+
//
// An entry (T, r) says: every batch of the segment with base offset below
// base+r has a max timestamp <= T, and T is the largest of them. One is
// written with an index entry when the segment's max timestamp grew since
// the last one, and a final one when the segment is rolled, so the last
// entry of a closed segment holds its max timestamp.
//
// start-offset and cleaner-offset files: 12 bytes each, written atomically
// (tmp, fsync, rename, fsync of the directory).
//
//	0                           8             12
//	+---------------------------+-------------+
//	| start offset i64          | crc32c u32  |
//	+---------------------------+-------------+
//
// The index files are derived data: they are rebuilt from the .log file
// whenever they look wrong, and never fsynced except when a segment is
// rolled. See docs/format/segment.md for crash safety and recovery.
const (
	fileMagic       = "SSEG"
	fileVersion     = 1
	fileHeaderSize  = 24
	frameHeaderSize = 28

	// MaxEntryBytes bounds one entry's Data. It is part of the format:
	// recovery treats a larger frame length as corruption.
	MaxEntryBytes = 64 << 20

	indexEntrySize = 12
	timeEntrySize  = 12
	startFileSize  = 12

	// maxSegmentBytes: positions are u32 in the index, so a segment file,
	// including its largest possible last frame, must stay below 4 GiB.
	maxSegmentBytes = 1<<32 - 1 - frameHeaderSize - MaxEntryBytes

	logSuffix       = ".log"
	indexSuffix     = ".index"
	timeIndexSuffix = ".timeindex"
	startFileName   = "start-offset"
	cleanerFileName = "cleaner-offset"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendFileHeader appends a .log file header.
func appendFileHeader(dst []byte, base int64, baseIndex uint64) []byte {
	dst = append(dst, fileMagic...)
	dst = append(dst, fileVersion, 0, 0, 0)
	dst = binary.BigEndian.AppendUint64(dst, uint64(base))
	return binary.BigEndian.AppendUint64(dst, baseIndex)
}

// parseFileHeader decodes and checks a .log file header.
func parseFileHeader(b []byte) (base int64, baseIndex uint64, err error) {
	if len(b) < fileHeaderSize {
		return 0, 0, fmt.Errorf("file header: %d bytes, want %d", len(b), fileHeaderSize)
	}
	if string(b[:4]) != fileMagic {
		return 0, 0, fmt.Errorf("file header: magic %q, want %q", b[:4], fileMagic)
	}
	if b[4] != fileVersion {
		return 0, 0, fmt.Errorf("file header: version %d, want %d", b[4], fileVersion)
	}
	base = int64(binary.BigEndian.Uint64(b[8:]))
	baseIndex = binary.BigEndian.Uint64(b[16:])
	if base < 0 || baseIndex == 0 {
		return 0, 0, fmt.Errorf("file header: base offset %d, base index %d", base, baseIndex)
	}
	return base, baseIndex, nil
}

// frameHeader is a decoded frame header.
type frameHeader struct {
	length uint32
	crc    uint32
	index  uint64
	term   uint64
	typ    EntryType
}

// appendFrame appends e as one frame.
func appendFrame(dst []byte, e Entry) []byte {
	start := len(dst)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(e.Data)))
	dst = append(dst, 0, 0, 0, 0) // crc, below
	dst = binary.BigEndian.AppendUint64(dst, e.Index)
	dst = binary.BigEndian.AppendUint64(dst, e.Term)
	dst = append(dst, byte(e.Type), 0, 0, 0)
	dst = append(dst, e.Data...)
	crc := frameCRC(dst[start:start+frameHeaderSize], e.Data)
	binary.BigEndian.PutUint32(dst[start+4:], crc)
	return dst
}

// parseFrameHeader decodes the 28 bytes of a frame header (no checks).
func parseFrameHeader(b []byte) frameHeader {
	return frameHeader{
		length: binary.BigEndian.Uint32(b[0:]),
		crc:    binary.BigEndian.Uint32(b[4:]),
		index:  binary.BigEndian.Uint64(b[8:]),
		term:   binary.BigEndian.Uint64(b[16:]),
		typ:    EntryType(b[24]),
	}
}

// frameCRC is the CRC of a frame: header bytes 8..28, then the payload.
func frameCRC(hdr, payload []byte) uint32 {
	c := crc32.Update(0, castagnoli, hdr[8:frameHeaderSize])
	return crc32.Update(c, castagnoli, payload)
}

// appendStartFile encodes the start-offset (or cleaner-offset) file.
func appendStartFile(dst []byte, start int64) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(start))
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[len(dst)-8:], castagnoli))
}

// parseStartFile decodes the start-offset (or cleaner-offset) file.
func parseStartFile(b []byte) (int64, error) {
	if len(b) != startFileSize {
		return 0, fmt.Errorf("%d bytes, want %d", len(b), startFileSize)
	}
	if crc32.Checksum(b[:8], castagnoli) != binary.BigEndian.Uint32(b[8:]) {
		return 0, fmt.Errorf("checksum mismatch")
	}
	v := int64(binary.BigEndian.Uint64(b))
	if v < 0 {
		return 0, fmt.Errorf("negative offset %d", v)
	}
	return v, nil
}
