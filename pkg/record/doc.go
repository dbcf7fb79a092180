// Package record encodes, decodes and validates record batches: the unit in
// which Strata's producers send, its brokers store, and its consumers read
// records.
//
// The layout is Kafka's RecordBatch v2 (magic 2), byte for byte, so that a
// Kafka wire-protocol listener can serve stored batches unchanged. It is
// drawn in batch.go and docs/format/segment.md.
//
// Usage:
//
//	b, err := record.Encode([]record.Record{{Key: k, Value: v}}, record.EncodeOptions{Compression: record.Zstd})
//	// ... send b; the broker calls record.Validate and record.SetBaseOffset ...
//	recs, err := record.Decode(b, record.DecodeOptions{})
//
// Caller's duties:
//  1. Treat every byte slice from a peer or a file as untrusted: call
//     Validate (broker) or Decode (client), which bound every length before
//     allocating and check the CRC.
//  2. Decoded records alias the input for uncompressed batches; copy them if
//     the input buffer is reused.
//  3. Nil and empty differ: a nil Key is a null key, a nil Value is a
//     tombstone, as in Kafka.
//  4. Stored batches may be compacted (Filter): fewer records than
//     offsets, possibly none. Decode accepts them; Validate does only with
//     ValidateOptions.Compacted, which the produce path must never set.
//     Advance by BatchHeader.NextOffset, never by RecordCount.
package record
