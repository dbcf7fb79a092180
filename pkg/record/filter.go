package record

import (
	"encoding/binary"
	"fmt"
)

// Compacted batches. Key compaction (Kafka's log cleaner, Strata's
// segment.Log.Compact) removes records from stored batches but never moves
// one: every kept record keeps its offset, and every batch keeps the
// offsets it occupied, so a log's offsets, and the raft entries holding
// them, stay where they were. A compacted batch is therefore a batch with
// fewer records than offsets:
//
//	base offset, last offset delta   unchanged: the batch still covers
//	                                 [base, base+last offset delta]
//	record count                     the records kept: 0 to last offset delta+1
//	offset deltas                    the kept records' own, strictly increasing
//	                                 within [0, last offset delta], with gaps
//	base/max timestamp               unchanged (the max may exceed every kept
//	                                 record's timestamp)
//	producer id/epoch, base sequence unchanged
//	attributes                       unchanged, except that an empty batch
//	                                 (record count 0) has no records to
//	                                 compress and clears its codec bits, as
//	                                 Kafka writes it
//	records                          the kept records byte for byte (timestamp
//	                                 delta, offset delta, key, value, headers),
//	                                 compressed again with the batch's codec
//	CRC                              recomputed
//
// Producers never send such a batch, so Validate refuses it unless
// ValidateOptions.Compacted is set; Decode, which reads stored data,
// accepts it.

// Filter returns batch b keeping only the records for which keep returns
// true, rewritten as drawn above, and how many records it removed. keep
// sees each record decoded as Decode returns it (Offset and Timestamp set;
// Key and Value may alias b or a decompressed copy, valid during the call
// only), in order. When keep keeps every record, Filter returns b itself
// and 0: a batch is never rewritten for nothing, so filtering again with
// the same decisions gives the same bytes. Otherwise the returned slice is
// fresh.
//
// b is checked like Decode checks it (CRC included) and may already be
// compacted. Control batches are returned as they are, keep not called:
// they are markers, not keyed data. Filter never changes the batch's base
// offset (bytes 0..8) or partition leader epoch, which are outside the CRC.
func Filter(b []byte, opts DecodeOptions, keep func(r Record) bool) ([]byte, int, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return nil, 0, err
	}
	if h.Size() != len(b) {
		return nil, 0, malformed("batch length says %d bytes, %d present", h.Size(), len(b))
	}
	if Checksum(b) != h.CRC {
		return nil, 0, ErrCorrupt
	}
	rules := walkRules{maxDecompressed: opts.MaxDecompressed, allowControl: true, compacted: true}
	if h.IsControl() {
		return b, 0, walkRecords(b, h, rules, nil)
	}
	var body []byte // kept records, uncompressed
	removed, kept := 0, 0
	err = walkRecords(b, h, rules, func(r Record, raw []byte) {
		if keep(r) {
			body = append(body, raw...)
			kept++
		} else {
			removed++
		}
	})
	if err != nil {
		return nil, 0, err
	}
	if removed == 0 {
		return b, 0, nil
	}
	attrs := h.Attributes
	if kept == 0 {
		attrs &^= attrCompressionMask
	} else if c := h.Compression(); c != None {
		if body, err = compress(c, body); err != nil {
			return nil, 0, fmt.Errorf("record: filter: %w", err)
		}
	}
	out := make([]byte, HeaderSize, HeaderSize+len(body))
	copy(out, b[:HeaderSize])
	out = append(out, body...)
	be := binary.BigEndian
	be.PutUint32(out[offLength:], uint32(len(out)-lengthFieldEnd))
	be.PutUint16(out[offAttributes:], uint16(attrs))
	be.PutUint32(out[offRecordCount:], uint32(kept))
	be.PutUint32(out[offCRC:], Checksum(out))
	return out, removed, nil
}
