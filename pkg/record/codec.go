package record

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"
)

// EncodeOptions says how Encode builds a batch.
type EncodeOptions struct {
	Compression   Compression
	ProducerID    int64 // -1 when not idempotent
	ProducerEpoch int16 // -1 when not idempotent
	BaseSequence  int32 // -1 when not idempotent
	// Now is used for records with a zero Timestamp; nil means time.Now.
	Now func() time.Time
}

// DefaultMaxDecompressed caps a batch's decompressed records: 64 MiB.
const DefaultMaxDecompressed = 64 << 20

// Encode builds one batch holding recs, with base offset 0 (the broker
// assigns offsets). It fails only for an unknown codec or more records than
// a batch can count.
func Encode(recs []Record, opts EncodeOptions) ([]byte, error) {
	if len(recs) == 0 || len(recs) > math.MaxInt32 {
		return nil, fmt.Errorf("record: a batch holds 1 to %d records, not %d", math.MaxInt32, len(recs))
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	var nowMs int64
	ts := make([]int64, len(recs))
	for i, r := range recs {
		if r.Timestamp.IsZero() {
			if nowMs == 0 {
				nowMs = now().UnixMilli()
			}
			ts[i] = nowMs
		} else {
			ts[i] = r.Timestamp.UnixMilli()
		}
	}
	base, maxTs := ts[0], ts[0]
	for _, t := range ts {
		base = min(base, t)
		maxTs = max(maxTs, t)
	}

	// Records go straight after room for the header; with compression the
	// compressed records replace them. Sizing the buffer first avoids
	// regrowing it once per record.
	size := HeaderSize
	for _, r := range recs {
		size += len(r.Key) + len(r.Value) + 24
		for _, h := range r.Headers {
			size += len(h.Key) + len(h.Value) + 10
		}
	}
	b := make([]byte, HeaderSize, size)
	for i, r := range recs {
		b = appendRecord(b, r, ts[i]-base, int32(i))
	}
	if opts.Compression != None {
		payload, err := compress(opts.Compression, b[HeaderSize:])
		if err != nil {
			return nil, err
		}
		b = append(b[:HeaderSize], payload...)
	}
	payloadLen := len(b) - HeaderSize

	be := binary.BigEndian
	be.PutUint64(b[offBaseOffset:], 0)
	be.PutUint32(b[offLength:], uint32(HeaderSize-lengthFieldEnd+payloadLen))
	be.PutUint32(b[offLeaderEpoch:], math.MaxUint32) // -1: set by the broker
	b[offMagic] = Magic
	be.PutUint16(b[offAttributes:], uint16(opts.Compression))
	be.PutUint32(b[offLastOffsetDelta:], uint32(len(recs)-1))
	be.PutUint64(b[offBaseTimestamp:], uint64(base))
	be.PutUint64(b[offMaxTimestamp:], uint64(maxTs))
	be.PutUint64(b[offProducerID:], uint64(opts.ProducerID))
	be.PutUint16(b[offProducerEpoch:], uint16(opts.ProducerEpoch))
	be.PutUint32(b[offBaseSequence:], uint32(opts.BaseSequence))
	be.PutUint32(b[offRecordCount:], uint32(len(recs)))
	be.PutUint32(b[offCRC:], Checksum(b))
	return b, nil
}

func appendRecord(dst []byte, r Record, tsDelta int64, offDelta int32) []byte {
	n := 1 + varintLen(tsDelta) + varintLen(int64(offDelta)) +
		bytesLen(r.Key) + bytesLen(r.Value) + varintLen(int64(len(r.Headers)))
	for _, h := range r.Headers {
		n += varintLen(int64(len(h.Key))) + len(h.Key) + bytesLen(h.Value)
	}
	dst = binary.AppendVarint(dst, int64(n))
	dst = append(dst, 0) // attributes
	dst = binary.AppendVarint(dst, tsDelta)
	dst = binary.AppendVarint(dst, int64(offDelta))
	dst = appendBytes(dst, r.Key)
	dst = appendBytes(dst, r.Value)
	dst = binary.AppendVarint(dst, int64(len(r.Headers)))
	for _, h := range r.Headers {
		dst = binary.AppendVarint(dst, int64(len(h.Key)))
		dst = append(dst, h.Key...)
		dst = appendBytes(dst, h.Value)
	}
	return dst
}

func varintLen(v int64) int {
	var buf [binary.MaxVarintLen64]byte
	return binary.PutVarint(buf[:], v)
}

func bytesLen(b []byte) int {
	if b == nil {
		return varintLen(-1)
	}
	return varintLen(int64(len(b))) + len(b)
}

func appendBytes(dst, b []byte) []byte {
	if b == nil {
		return binary.AppendVarint(dst, -1)
	}
	dst = binary.AppendVarint(dst, int64(len(b)))
	return append(dst, b...)
}

// ValidateOptions bounds what Validate accepts.
type ValidateOptions struct {
	MaxBatchBytes   int // 0 = no limit beyond the slice itself
	MaxDecompressed int // 0 = DefaultMaxDecompressed
	// AllowControl accepts control and transactional batches (written by
	// the broker itself, never by producers).
	AllowControl bool
	// Compacted accepts batches that key compaction rewrote (see Filter):
	// fewer records than offsets, possibly none. Set it for stored data
	// (a log, a fetch response, raft replication of a stored entry), never
	// for a produce request: a producer's batch holds every offset it
	// claims.
	Compacted bool
}

// Validate checks that b is exactly one well-formed batch: header framing,
// size limit, CRC, attributes, and every record (decompressing if needed,
// within MaxDecompressed). It is what the broker runs on every produced
// batch; nothing that fails it is stored. By default it is strict: one
// record per offset, as producers write batches.
func Validate(b []byte, opts ValidateOptions) (BatchHeader, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return h, err
	}
	if opts.MaxBatchBytes > 0 && len(b) > opts.MaxBatchBytes {
		return h, fmt.Errorf("%w: %d bytes, the limit is %d (max.message.bytes)", ErrTooLarge, len(b), opts.MaxBatchBytes)
	}
	if h.Size() != len(b) {
		return h, malformed("batch length says %d bytes, %d present", h.Size(), len(b))
	}
	if Checksum(b) != h.CRC {
		return h, ErrCorrupt
	}
	err = walkRecords(b, h, walkRules{maxDecompressed: opts.MaxDecompressed, allowControl: opts.AllowControl, compacted: opts.Compacted}, nil)
	return h, err
}

// DecodeOptions bounds what Decode accepts.
type DecodeOptions struct {
	MaxDecompressed int // 0 = DefaultMaxDecompressed
}

// Decode checks one batch like Validate and returns its records with their
// offsets and timestamps. Control batches decode to no records. Decode
// reads stored data, so it accepts compacted batches (see Filter): their
// records keep their own offsets, with gaps, and an empty one decodes to no
// records; the next batch starts at the header's NextOffset either way.
func Decode(b []byte, opts DecodeOptions) ([]Record, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return nil, err
	}
	if h.Size() != len(b) {
		return nil, malformed("batch length says %d bytes, %d present", h.Size(), len(b))
	}
	if Checksum(b) != h.CRC {
		return nil, ErrCorrupt
	}
	rules := walkRules{maxDecompressed: opts.MaxDecompressed, allowControl: true, compacted: true}
	if h.IsControl() {
		// Checked like any batch (a control batch is no licence for bad
		// framing), then hidden from the application.
		if err := walkRecords(b, h, rules, nil); err != nil {
			return nil, err
		}
		return nil, nil
	}
	// Not sized before the walk: the record count is not checked yet, and
	// a lying count must not size an allocation. The walk checks it before
	// the first visit.
	out := []Record{}
	err = walkRecords(b, h, rules, func(r Record, _ []byte) {
		if len(out) == 0 {
			out = slices.Grow(out, int(h.RecordCount))
		}
		out = append(out, r)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// walkRules says which batches walkRecords accepts.
type walkRules struct {
	maxDecompressed int
	allowControl    bool
	compacted       bool // fewer records than offsets (see Filter)
}

// checkCount checks a batch's record count against its last offset delta:
// equal plus one for a producer's batch; at most that, and possibly zero,
// for a compacted one.
func checkCount(h BatchHeader, compacted bool) error {
	if compacted {
		if h.LastOffsetDelta < 0 || h.RecordCount < 0 || int64(h.RecordCount) > int64(h.LastOffsetDelta)+1 {
			return malformed("record count %d, last offset delta %d: a compacted batch holds 0 to last offset delta + 1 records", h.RecordCount, h.LastOffsetDelta)
		}
		return nil
	}
	if h.RecordCount < 1 {
		return malformed("record count %d, a batch holds at least one record", h.RecordCount)
	}
	if h.LastOffsetDelta != h.RecordCount-1 {
		return malformed("last offset delta %d does not match record count %d", h.LastOffsetDelta, h.RecordCount)
	}
	return nil
}

// walkRecords checks the records of a batch whose framing and CRC are
// checked, calling visit (when not nil) with each record, its offset and
// timestamp set, and its encoded bytes (length prefix included; they alias
// the batch or its decompressed copy).
func walkRecords(b []byte, h BatchHeader, rules walkRules, visit func(r Record, raw []byte)) error {
	if h.Attributes&^attrKnownMask != 0 {
		return malformed("unknown attribute bits %#x", h.Attributes&^attrKnownMask)
	}
	if c := h.Compression(); c > Zstd {
		return malformed("unknown compression codec %d", c)
	}
	if !rules.allowControl && h.Attributes&(attrControl|attrTransactional|attrDeleteHorizon) != 0 {
		return malformed("control, transactional and delete-horizon batches are not accepted from producers (attributes %#x)", h.Attributes)
	}
	if err := checkCount(h, rules.compacted); err != nil {
		return err
	}
	maxDecompressed := rules.maxDecompressed
	if maxDecompressed <= 0 {
		maxDecompressed = DefaultMaxDecompressed
	}
	body, err := decompress(h.Compression(), b[HeaderSize:], maxDecompressed)
	if err != nil {
		return err
	}
	// Every record takes at least 7 bytes (length, attributes, timestamp
	// delta, offset delta, key length, value length, header count); a count
	// beyond that is a lie that must not size an allocation.
	if int64(h.RecordCount) > int64(len(body)/minRecordSize) {
		return malformed("record count %d cannot fit in %d bytes", h.RecordCount, len(body))
	}
	// The max timestamp is the records' own: the base timestamp need not be
	// one of them (deltas may be negative, and a delete horizon replaces it).
	maxTs := int64(math.MinInt64)
	prevDelta := int64(-1)
	for i := int32(0); i < h.RecordCount; i++ {
		var r Record
		var tsDelta, offDelta int64
		rest := body
		r, tsDelta, offDelta, rest, err = readRecord(body, i)
		if err != nil {
			return err
		}
		// A producer's batch numbers its records 0, 1, 2, ...; compaction
		// leaves gaps, but the deltas still increase within the batch.
		if !rules.compacted && offDelta != int64(i) {
			return malformed("record %d has offset delta %d", i, offDelta)
		}
		if offDelta <= prevDelta || offDelta > int64(h.LastOffsetDelta) {
			return malformed("record %d has offset delta %d, after %d, last offset delta %d", i, offDelta, prevDelta, h.LastOffsetDelta)
		}
		prevDelta = offDelta
		ts := h.BaseTimestamp + tsDelta
		maxTs = max(maxTs, ts)
		if visit != nil {
			r.Offset = h.BaseOffset + offDelta
			if h.Attributes&attrLogAppendTime != 0 {
				// The broker stamped the batch: every record's
				// timestamp is the max timestamp, as Kafka clients read it.
				ts = h.MaxTimestamp
			}
			r.Timestamp = time.UnixMilli(ts)
			visit(r, body[:len(body)-len(rest)])
		}
		body = rest
	}
	if len(body) != 0 {
		return malformed("%d bytes after the last record", len(body))
	}
	// A compacted batch keeps the max timestamp of the records it lost, so
	// that its place in the time index and its age never change.
	full := int64(h.RecordCount) == int64(h.LastOffsetDelta)+1
	if h.Attributes&attrLogAppendTime == 0 && (full && maxTs != h.MaxTimestamp || !full && maxTs > h.MaxTimestamp) {
		return malformed("max timestamp %d, records say %d", h.MaxTimestamp, maxTs)
	}
	return nil
}

// reader reads varints and byte strings, remembering the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) varint(what string) int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = malformed("bad varint for %s", what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes(what string, nullable bool) []byte {
	if r.err != nil {
		return nil
	}
	// Not r.varint(what + " length"): that concatenation allocated twice
	// per record on the broker's hot path, for a label used only on error.
	n, w := binary.Varint(r.b)
	if w <= 0 {
		r.err = malformed("bad varint for %s length", what)
		return nil
	}
	r.b = r.b[w:]
	if n == -1 && nullable {
		return nil
	}
	if n < 0 || n > int64(len(r.b)) {
		r.err = malformed("%s length %d, %d bytes left", what, n, len(r.b))
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// readRecord reads record i from b, returning it with its timestamp and
// offset deltas and the bytes after it.
func readRecord(b []byte, i int32) (Record, int64, int64, []byte, error) {
	r := reader{b: b}
	n := r.varint("record length")
	if r.err != nil {
		return Record{}, 0, 0, nil, r.err
	}
	if n < 1 || n > int64(len(r.b)) {
		return Record{}, 0, 0, nil, malformed("record %d: length %d, %d bytes left", i, n, len(r.b))
	}
	rest := r.b[n:]
	r.b = r.b[:n]
	r.b = r.b[1:] // attributes, unused
	tsDelta := r.varint("timestamp delta")
	offDelta := r.varint("offset delta")
	var rec Record
	rec.Key = r.bytes("key", true)
	rec.Value = r.bytes("value", true)
	nh := r.varint("header count")
	if r.err == nil && (nh < 0 || nh > int64(len(r.b))/2) {
		r.err = malformed("record %d: header count %d", i, nh)
	}
	if r.err == nil && nh > 0 {
		rec.Headers = make([]Header, 0, nh)
		for j := int64(0); j < nh && r.err == nil; j++ {
			k := r.bytes("header key", false)
			v := r.bytes("header value", true)
			rec.Headers = append(rec.Headers, Header{Key: string(k), Value: v})
		}
	}
	if r.err != nil {
		return Record{}, 0, 0, nil, fmt.Errorf("record %d: %w", i, r.err)
	}
	if len(r.b) != 0 {
		return Record{}, 0, 0, nil, malformed("record %d: %d bytes past its fields", i, len(r.b))
	}
	return rec, tsDelta, offDelta, rest, nil
}
