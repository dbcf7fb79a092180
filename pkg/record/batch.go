package record

import (
	"encoding/binary"
	"hash/crc32"
)

// The batch format: Kafka RecordBatch v2, big-endian. Every constant in this
// file is part of the on-disk and on-wire format; changing one breaks every
// stored log and every client.
//
//	0       8       12      16  17      21    23      27              35
//	+-------+-------+-------+---+-------+-----+-------+---------------+----
//	| base  | batch | leader| m | crc   |attrs| last  | base timestamp| ...
//	| offset| length| epoch | 2 | 32c   |     | offset|  (unix ms)    |
//	| i64   | i32   | i32   |i8 | u32   | i16 | delta |  i64          |
//	+-------+-------+-------+---+-------+-----+-------+---------------+----
//	35              43              51      53      57      61
//	+---------------+---------------+-------+-------+-------+----------- - -
//	| max timestamp | producer id   | prod. | base  | record| records
//	| i64           | i64           | epoch | seq.  | count | (maybe compressed)
//	|               |               | i16   | i32   | i32   |
//	+---------------+---------------+-------+-------+-------+----------- - -
//
// batch length counts the bytes after itself (total size - 12). The CRC is
// CRC-32C (Castagnoli) over bytes 21..end, so base offset, length and leader
// epoch may be rewritten by the broker without recomputing it.
//
// attributes: bits 0-2 compression (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd),
// bit 3 timestamp type (0 create time, 1 log append time), bit 4
// transactional, bit 5 control, bit 6 delete horizon; the rest must be zero.
//
// Each record, after decompression, is:
//
//	length          varint (zig-zag), bytes after this field
//	attributes      i8 (unused, 0)
//	timestamp delta varint, ms after base timestamp
//	offset delta    varint, index of the record in the batch
//	key length      varint, -1 = null key
//	key             bytes
//	value length    varint, -1 = null value (tombstone)
//	value           bytes
//	header count    varint
//	headers         count × { key length varint, key, value length varint (-1 = null), value }
const (
	HeaderSize = 61 // bytes before the first record
	Magic      = 2

	offBaseOffset      = 0
	offLength          = 8
	offLeaderEpoch     = 12
	offMagic           = 16
	offCRC             = 17
	offAttributes      = 21
	offLastOffsetDelta = 23
	offBaseTimestamp   = 27
	offMaxTimestamp    = 35
	offProducerID      = 43
	offProducerEpoch   = 51
	offBaseSequence    = 53
	offRecordCount     = 57

	// lengthFieldEnd: batch length counts the bytes after this position.
	lengthFieldEnd = 12

	// minRecordSize is the smallest record: seven one-byte fields (length,
	// attributes, timestamp delta, offset delta, key length, value length,
	// header count).
	minRecordSize = 7

	attrCompressionMask = 0x07
	attrLogAppendTime   = 0x08
	attrTransactional   = 0x10
	attrControl         = 0x20
	attrDeleteHorizon   = 0x40
	attrKnownMask       = 0x7f
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Compression is a batch's codec, stored in its attributes.
type Compression int8

// The codecs, numbered as in Kafka.
const (
	None   Compression = 0
	Gzip   Compression = 1
	Snappy Compression = 2
	LZ4    Compression = 3
	Zstd   Compression = 4
)

func (c Compression) String() string {
	switch c {
	case None:
		return "none"
	case Gzip:
		return "gzip"
	case Snappy:
		return "snappy"
	case LZ4:
		return "lz4"
	case Zstd:
		return "zstd"
	}
	return "unknown"
}

// ParseCompression turns a codec name ("none", "gzip", "snappy", "lz4",
// "zstd") into a Compression.
func ParseCompression(s string) (Compression, bool) {
	for c := None; c <= Zstd; c++ {
		if c.String() == s {
			return c, true
		}
	}
	return None, false
}

// BatchHeader is the fixed 61-byte prefix of a batch, decoded.
type BatchHeader struct {
	BaseOffset      int64
	Length          int32
	LeaderEpoch     int32
	Magic           int8
	CRC             uint32
	Attributes      int16
	LastOffsetDelta int32
	BaseTimestamp   int64
	MaxTimestamp    int64
	ProducerID      int64
	ProducerEpoch   int16
	BaseSequence    int32
	RecordCount     int32
}

// Size is the batch's whole size in bytes.
func (h BatchHeader) Size() int { return lengthFieldEnd + int(h.Length) }

// LastOffset is the offset of the batch's last record.
func (h BatchHeader) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// NextOffset is the offset after the batch's last record.
func (h BatchHeader) NextOffset() int64 { return h.LastOffset() + 1 }

// Compression is the batch's codec.
func (h BatchHeader) Compression() Compression {
	return Compression(h.Attributes & attrCompressionMask)
}

// IsControl reports a control batch (never shown to applications).
func (h BatchHeader) IsControl() bool { return h.Attributes&attrControl != 0 }

// IsTransactional reports a batch written inside a transaction.
func (h BatchHeader) IsTransactional() bool { return h.Attributes&attrTransactional != 0 }

// ParseHeader decodes the fixed prefix of b. It checks only that b is long
// enough for the prefix and that the declared length is sane; Validate checks
// the rest.
func ParseHeader(b []byte) (BatchHeader, error) {
	if len(b) < HeaderSize {
		return BatchHeader{}, malformed("%d bytes, shorter than the %d-byte batch header", len(b), HeaderSize)
	}
	be := binary.BigEndian
	h := BatchHeader{
		BaseOffset:      int64(be.Uint64(b[offBaseOffset:])),
		Length:          int32(be.Uint32(b[offLength:])),
		LeaderEpoch:     int32(be.Uint32(b[offLeaderEpoch:])),
		Magic:           int8(b[offMagic]),
		CRC:             be.Uint32(b[offCRC:]),
		Attributes:      int16(be.Uint16(b[offAttributes:])),
		LastOffsetDelta: int32(be.Uint32(b[offLastOffsetDelta:])),
		BaseTimestamp:   int64(be.Uint64(b[offBaseTimestamp:])),
		MaxTimestamp:    int64(be.Uint64(b[offMaxTimestamp:])),
		ProducerID:      int64(be.Uint64(b[offProducerID:])),
		ProducerEpoch:   int16(be.Uint16(b[offProducerEpoch:])),
		BaseSequence:    int32(be.Uint32(b[offBaseSequence:])),
		RecordCount:     int32(be.Uint32(b[offRecordCount:])),
	}
	if h.Length < HeaderSize-lengthFieldEnd {
		return h, malformed("batch length %d is below the minimum %d", h.Length, HeaderSize-lengthFieldEnd)
	}
	if h.Magic != Magic {
		return h, malformed("magic %d, want %d", h.Magic, Magic)
	}
	return h, nil
}

// SetBaseOffset rewrites the base offset of the batch in b. It is outside the
// CRC, so the batch stays valid.
func SetBaseOffset(b []byte, off int64) {
	binary.BigEndian.PutUint64(b[offBaseOffset:], uint64(off))
}

// SetLeaderEpoch rewrites the partition leader epoch of the batch in b (also
// outside the CRC).
func SetLeaderEpoch(b []byte, epoch int32) {
	binary.BigEndian.PutUint32(b[offLeaderEpoch:], uint32(epoch))
}

// SetLogAppendTime stamps the batch in b with the broker's time ts (unix
// ms), as Kafka does for message.timestamp.type=LogAppendTime: it sets the
// timestamp-type attribute bit and the max timestamp, and recomputes the
// CRC (both are inside it). The records' own timestamp deltas are left as
// the producer wrote them: readers of a log-append-time batch give every
// record the max timestamp (Decode does), so the records need no rewrite
// and compressed batches are not recompressed.
//
// The caller must have checked the CRC first (Checksum(b) == header CRC):
// recomputing it would otherwise bless a corrupt batch.
func SetLogAppendTime(b []byte, ts int64) {
	be := binary.BigEndian
	be.PutUint16(b[offAttributes:], be.Uint16(b[offAttributes:])|attrLogAppendTime)
	be.PutUint64(b[offMaxTimestamp:], uint64(ts))
	be.PutUint32(b[offCRC:], Checksum(b))
}

// IsLogAppendTime reports whether the broker stamped the batch (its
// records' timestamps are its max timestamp).
func (h BatchHeader) IsLogAppendTime() bool { return h.Attributes&attrLogAppendTime != 0 }

// Next splits the first whole batch off b. It checks only the framing of
// the header (see ParseHeader) and that the batch fits in b; it does not
// check the CRC. rest is what follows the batch.
func Next(b []byte) (batch []byte, h BatchHeader, rest []byte, err error) {
	h, err = ParseHeader(b)
	if err != nil {
		return nil, h, b, err
	}
	if h.Size() > len(b) {
		return nil, h, b, malformed("batch of %d bytes, only %d present", h.Size(), len(b))
	}
	return b[:h.Size()], h, b[h.Size():], nil
}

// Checksum computes the CRC of the batch in b (bytes 21..end).
func Checksum(b []byte) uint32 {
	return crc32.Checksum(b[offAttributes:], castagnoli)
}
