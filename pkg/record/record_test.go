package record

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var allCodecs = []Compression{None, Gzip, Snappy, LZ4, Zstd}

// testNow is the clock of every test batch, so that batches are
// deterministic.
var testNow = time.UnixMilli(1_700_000_000_000)

// sampleRecords covers the cases that differ on the wire: null and empty
// keys, a tombstone, an empty value, repeated header keys with null and
// empty header values, a zero timestamp (filled in with the clock), and a
// timestamp earlier than the first record's.
func sampleRecords() []Record {
	return []Record{
		{Key: []byte("k0"), Value: []byte("v0"), Timestamp: testNow.Add(5 * time.Millisecond)},
		{Key: nil, Value: []byte("null key"), Timestamp: testNow.Add(7 * time.Millisecond)},
		{Key: []byte{}, Value: []byte("empty key"), Timestamp: testNow},
		{Key: []byte("tombstone"), Value: nil, Timestamp: testNow.Add(-3 * time.Millisecond)},
		{Key: []byte("empty value"), Value: []byte{}},
		{Key: []byte("h"), Value: bytes.Repeat([]byte("x"), 300), Headers: []Header{
			{Key: "a", Value: []byte("1")},
			{Key: "a", Value: nil},
			{Key: "", Value: []byte{}},
		}, Timestamp: testNow.Add(time.Hour)},
	}
}

func encode(t testing.TB, recs []Record, c Compression) []byte {
	t.Helper()
	b, err := Encode(recs, EncodeOptions{
		Compression: c, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1,
		Now: func() time.Time { return testNow },
	})
	if err != nil {
		t.Fatalf("Encode(%s): %v", c, err)
	}
	return b
}

// wantRecords is what decoding recs, encoded at testNow with base offset
// base, gives.
func wantRecords(recs []Record, base int64) []Record {
	out := make([]Record, len(recs))
	for i, r := range recs {
		out[i] = r
		if r.Timestamp.IsZero() {
			out[i].Timestamp = testNow
		}
		out[i].Offset = base + int64(i)
	}
	return out
}

// checkRecords compares records field by field, telling nil from empty.
func checkRecords(t testing.TB, got, want []Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if !sameBytes(g.Key, w.Key) {
			t.Errorf("record %d: key %q (nil %t), want %q (nil %t)", i, g.Key, g.Key == nil, w.Key, w.Key == nil)
		}
		if !sameBytes(g.Value, w.Value) {
			t.Errorf("record %d: value %q (nil %t), want %q (nil %t)", i, g.Value, g.Value == nil, w.Value, w.Value == nil)
		}
		if g.Timestamp.UnixMilli() != w.Timestamp.UnixMilli() {
			t.Errorf("record %d: timestamp %d, want %d", i, g.Timestamp.UnixMilli(), w.Timestamp.UnixMilli())
		}
		if g.Offset != w.Offset {
			t.Errorf("record %d: offset %d, want %d", i, g.Offset, w.Offset)
		}
		if len(g.Headers) != len(w.Headers) {
			t.Errorf("record %d: %d headers, want %d", i, len(g.Headers), len(w.Headers))
			continue
		}
		for j := range w.Headers {
			if g.Headers[j].Key != w.Headers[j].Key || !sameBytes(g.Headers[j].Value, w.Headers[j].Value) {
				t.Errorf("record %d header %d: %q=%q, want %q=%q", i, j, g.Headers[j].Key, g.Headers[j].Value, w.Headers[j].Key, w.Headers[j].Value)
			}
		}
	}
}

func sameBytes(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }

func TestRoundTrip(t *testing.T) {
	for _, c := range allCodecs {
		t.Run(c.String(), func(t *testing.T) {
			recs := sampleRecords()
			b := encode(t, recs, c)
			SetBaseOffset(b, 1000)
			SetLeaderEpoch(b, 7)

			h, err := Validate(b, ValidateOptions{})
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if got := Checksum(b); got != h.CRC {
				t.Fatalf("CRC %#x after SetBaseOffset/SetLeaderEpoch, header says %#x", got, h.CRC)
			}
			wantHeader := BatchHeader{
				BaseOffset: 1000, Length: int32(len(b) - 12), LeaderEpoch: 7, Magic: Magic, CRC: h.CRC,
				Attributes: int16(c), LastOffsetDelta: int32(len(recs) - 1),
				BaseTimestamp: testNow.Add(-3 * time.Millisecond).UnixMilli(),
				MaxTimestamp:  testNow.Add(time.Hour).UnixMilli(),
				ProducerID:    -1, ProducerEpoch: -1, BaseSequence: -1, RecordCount: int32(len(recs)),
			}
			if h != wantHeader {
				t.Errorf("header\n got %+v\nwant %+v", h, wantHeader)
			}
			if h.Compression() != c || h.NextOffset() != 1000+int64(len(recs)) || h.Size() != len(b) {
				t.Errorf("compression %s, next offset %d, size %d", h.Compression(), h.NextOffset(), h.Size())
			}

			got, err := Decode(b, DecodeOptions{})
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			checkRecords(t, got, wantRecords(recs, 1000))

			batch, nh, rest, err := Next(append(b, 0xAA))
			if err != nil || !bytes.Equal(batch, b) || nh != h || !bytes.Equal(rest, []byte{0xAA}) {
				t.Errorf("Next: %d bytes, rest %x, err %v", len(batch), rest, err)
			}
		})
	}
}

func TestParseCompression(t *testing.T) {
	for _, c := range allCodecs {
		if got, ok := ParseCompression(c.String()); !ok || got != c {
			t.Errorf("ParseCompression(%q) = %s, %t", c.String(), got, ok)
		}
	}
	if _, ok := ParseCompression("brotli"); ok {
		t.Error("ParseCompression(brotli) succeeded")
	}
}

func TestEncodeRejects(t *testing.T) {
	if _, err := Encode(nil, EncodeOptions{}); err == nil {
		t.Error("Encode of no records succeeded")
	}
	if _, err := Encode([]Record{{}}, EncodeOptions{Compression: 5}); err == nil {
		t.Error("Encode with codec 5 succeeded")
	}
}

// TestLogAppendTime: in a batch the broker stamped, every record's timestamp
// is the batch's max timestamp, whatever the deltas say (as Kafka clients
// read it), and the max timestamp is not checked against the records.
func TestLogAppendTime(t *testing.T) {
	b := encode(t, sampleRecords(), None)
	const stamp = 1_800_000_000_000
	b = fix(b, func(b []byte) {
		be.PutUint16(b[offAttributes:], attrLogAppendTime)
		be.PutUint64(b[offMaxTimestamp:], stamp)
	})
	recs, err := Decode(b, DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		if r.Timestamp.UnixMilli() != stamp {
			t.Errorf("record %d: timestamp %d, want the log append time %d", i, r.Timestamp.UnixMilli(), stamp)
		}
	}
}

// TestBaseTimestampNotARecord: deltas may be negative, so the base timestamp
// need not be any record's; the max timestamp is the records' own.
func TestBaseTimestampNotARecord(t *testing.T) {
	body := rawRecord(0, -10, 0, []byte("k"), []byte("v"))
	body = append(body, rawRecord(0, -5, 1, nil, nil)...)
	b := rawBatch(t, body, 2, func(b []byte) {
		be.PutUint64(b[offBaseTimestamp:], 1000)
		be.PutUint64(b[offMaxTimestamp:], 995)
	})
	if _, err := Validate(b, ValidateOptions{}); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	recs, err := Decode(b, DecodeOptions{})
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if recs[0].Timestamp.UnixMilli() != 990 || recs[1].Timestamp.UnixMilli() != 995 {
		t.Errorf("timestamps %d, %d, want 990, 995", recs[0].Timestamp.UnixMilli(), recs[1].Timestamp.UnixMilli())
	}
	b = fix(b, func(b []byte) { be.PutUint64(b[offMaxTimestamp:], 1000) })
	if _, err := Validate(b, ValidateOptions{}); !isMalformed(err) {
		t.Errorf("max timestamp = base timestamp above every record: %v, want ErrMalformed", err)
	}
}

// TestControlBatch: control and transactional batches pass Validate only
// with AllowControl; Decode hides control records but checks their framing.
func TestControlBatch(t *testing.T) {
	b := encode(t, sampleRecords(), Zstd)
	for _, attr := range []int16{attrControl, attrTransactional, attrControl | attrTransactional, attrDeleteHorizon} {
		cb := fix(b, func(b []byte) { be.PutUint16(b[offAttributes:], uint16(int16(Zstd)|attr)) })
		if _, err := Validate(cb, ValidateOptions{}); !isMalformed(err) {
			t.Errorf("attributes %#x from a producer: %v, want ErrMalformed", attr, err)
		}
		if _, err := Validate(cb, ValidateOptions{AllowControl: true}); err != nil {
			t.Errorf("attributes %#x with AllowControl: %v", attr, err)
		}
		recs, err := Decode(cb, DecodeOptions{})
		switch {
		case err != nil:
			t.Errorf("Decode attributes %#x: %v", attr, err)
		case attr&attrControl != 0 && len(recs) != 0:
			t.Errorf("Decode of a control batch gave %d records", len(recs))
		case attr&attrControl == 0 && len(recs) != len(sampleRecords()):
			t.Errorf("Decode of a transactional batch gave %d records", len(recs))
		}
	}
	// A control batch whose records are garbage is malformed for Decode too.
	bad := rawBatch(t, []byte{1, 2, 3, 4, 5, 6, 7}, 1, func(b []byte) { be.PutUint16(b[offAttributes:], attrControl) })
	if _, err := Decode(bad, DecodeOptions{}); !isMalformed(err) {
		t.Errorf("Decode of a control batch with garbage records: %v, want ErrMalformed", err)
	}
	bad = fix(b, func(b []byte) { be.PutUint16(b[offAttributes:], attrControl|0x80) })
	if _, err := Decode(bad, DecodeOptions{}); !isMalformed(err) {
		t.Errorf("Decode of a control batch with unknown attribute bits: %v, want ErrMalformed", err)
	}
}

// TestKafkaBuildsStrataReads builds a batch with franz-go's kmsg, the
// reference layout, compressing with the libraries directly, and decodes
// it with Decode.
func TestKafkaBuildsStrataReads(t *testing.T) {
	want := wantRecords(sampleRecords(), 42)
	base := testNow.Add(-3 * time.Millisecond).UnixMilli()
	var body []byte
	maxTs := base
	for i, r := range want {
		kr := kmsg.Record{
			TimestampDelta64: r.Timestamp.UnixMilli() - base,
			OffsetDelta:      int32(i),
			Key:              r.Key,
			Value:            r.Value,
		}
		for _, h := range r.Headers {
			kr.Headers = append(kr.Headers, kmsg.Header{Key: h.Key, Value: h.Value})
		}
		kr.Length = int32(len(kr.AppendTo(nil)) - 1) // a zero Length is one varint byte
		body = kr.AppendTo(body)
		maxTs = max(maxTs, r.Timestamp.UnixMilli())
	}
	for _, c := range allCodecs {
		t.Run(c.String(), func(t *testing.T) {
			payload := referenceCompress(t, c, body)
			kb := kmsg.RecordBatch{
				FirstOffset: 42, PartitionLeaderEpoch: 3, Magic: 2,
				Attributes: int16(c), LastOffsetDelta: int32(len(want) - 1),
				FirstTimestamp: base, MaxTimestamp: maxTs,
				ProducerID: 9, ProducerEpoch: 1, FirstSequence: 100,
				NumRecords: int32(len(want)), Records: payload,
				Length: int32(49 + len(payload)),
			}
			b := kb.AppendTo(nil)
			kb.CRC = int32(crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
			b = kb.AppendTo(nil)

			h, err := Validate(b, ValidateOptions{})
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if h.ProducerID != 9 || h.ProducerEpoch != 1 || h.BaseSequence != 100 || h.LeaderEpoch != 3 {
				t.Errorf("header %+v", h)
			}
			got, err := Decode(b, DecodeOptions{})
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			checkRecords(t, got, want)
		})
	}
}

// TestStrataBuildsKafkaReads encodes with Encode and reads the batch back
// with kmsg.RecordBatch.ReadFrom and kmsg.Record.ReadFrom.
func TestStrataBuildsKafkaReads(t *testing.T) {
	for _, c := range allCodecs {
		t.Run(c.String(), func(t *testing.T) {
			recs := sampleRecords()
			b := encode(t, recs, c)
			SetBaseOffset(b, 1000)
			want := wantRecords(recs, 1000)

			var kb kmsg.RecordBatch
			if err := kb.ReadFrom(b); err != nil {
				t.Fatalf("kmsg.RecordBatch.ReadFrom: %v", err)
			}
			if kb.FirstOffset != 1000 || int(kb.Length) != len(b)-12 || kb.PartitionLeaderEpoch != -1 || kb.Magic != 2 ||
				kb.Attributes != int16(c) || kb.LastOffsetDelta != int32(len(recs)-1) || kb.NumRecords != int32(len(recs)) ||
				kb.ProducerID != -1 || kb.ProducerEpoch != -1 || kb.FirstSequence != -1 {
				t.Errorf("batch fields %+v", kb)
			}
			if crc := crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)); uint32(kb.CRC) != crc {
				t.Errorf("CRC %#x, CRC-32C of bytes 21.. is %#x", uint32(kb.CRC), crc)
			}
			maxTs := want[0].Timestamp.UnixMilli()
			for _, r := range want {
				maxTs = max(maxTs, r.Timestamp.UnixMilli())
			}
			if kb.MaxTimestamp != maxTs {
				t.Errorf("max timestamp %d, want %d", kb.MaxTimestamp, maxTs)
			}

			body := referenceDecompress(t, c, kb.Records)
			var got []Record
			for len(body) > 0 {
				n, w := binary.Varint(body)
				if w <= 0 || int64(len(body)-w) < n {
					t.Fatalf("record %d: bad length prefix", len(got))
				}
				var kr kmsg.Record
				if err := kr.ReadFrom(body[:w+int(n)]); err != nil {
					t.Fatalf("kmsg.Record.ReadFrom: %v", err)
				}
				body = body[w+int(n):]
				if kr.Attributes != 0 || kr.OffsetDelta != int32(len(got)) {
					t.Errorf("record %d: attributes %d, offset delta %d", len(got), kr.Attributes, kr.OffsetDelta)
				}
				r := Record{
					Key: kr.Key, Value: kr.Value,
					Timestamp: time.UnixMilli(kb.FirstTimestamp + kr.TimestampDelta64),
					Offset:    kb.FirstOffset + int64(kr.OffsetDelta),
				}
				for _, h := range kr.Headers {
					r.Headers = append(r.Headers, Header{Key: h.Key, Value: h.Value})
				}
				got = append(got, r)
			}
			checkRecords(t, got, want)
		})
	}
}

// referenceCompress compresses with the codec libraries directly, not
// through this package.
func referenceCompress(t testing.TB, c Compression, src []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	switch c {
	case None:
		return src
	case Snappy:
		return s2.EncodeSnappy(nil, src)
	case Gzip:
		w = gzip.NewWriter(&buf)
	case LZ4:
		w = lz4.NewWriter(&buf)
	case Zstd:
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w = zw
	}
	if _, err := w.Write(src); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func referenceDecompress(t testing.TB, c Compression, src []byte) []byte {
	t.Helper()
	var r io.Reader
	switch c {
	case None:
		return src
	case Snappy:
		out, err := s2.Decode(nil, src)
		if err != nil {
			t.Fatal(err)
		}
		return out
	case Gzip:
		gr, err := gzip.NewReader(bytes.NewReader(src))
		if err != nil {
			t.Fatal(err)
		}
		r = gr
	case LZ4:
		r = lz4.NewReader(bytes.NewReader(src))
	case Zstd:
		zr, err := zstd.NewReader(bytes.NewReader(src))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// xerial frames snappy chunks as the Java client does: magic, version,
// compatible version, then {u32 length, snappy block}*.
func xerial(chunks ...[]byte) []byte {
	out := append([]byte(nil), xerialMagic...)
	out = be.AppendUint32(out, 1)
	out = be.AppendUint32(out, 1)
	for _, c := range chunks {
		block := s2.EncodeSnappy(nil, c)
		out = be.AppendUint32(out, uint32(len(block)))
		out = append(out, block...)
	}
	return out
}

func TestSnappyXerial(t *testing.T) {
	recs := sampleRecords()
	plain := encode(t, recs, None)
	body := plain[HeaderSize:]
	var chunks [][]byte
	for rest := body; len(rest) > 0; {
		n := min(len(rest), 100)
		chunks = append(chunks, rest[:n])
		rest = rest[n:]
	}
	b := withPayload(plain, Snappy, xerial(chunks...))
	got, err := Decode(b, DecodeOptions{})
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	checkRecords(t, got, wantRecords(recs, 0))
	if _, err := Validate(b, ValidateOptions{}); err != nil {
		t.Fatalf("Validate: %v", err)
	}

	framed := xerial(chunks...)
	for name, payload := range map[string][]byte{
		"short header":          framed[:len(xerialMagic)+7],
		"short chunk length":    append(xerial(chunks...), 0, 0),
		"chunk past end":        framed[:len(framed)-1],
		"chunk not snappy":      append(xerial(), 0, 0, 0, 2, 0xff, 0xff),
		"records past last one": xerial(append(append([]byte(nil), body...), 0)),
	} {
		if _, err := Decode(withPayload(plain, Snappy, payload), DecodeOptions{}); !isMalformed(err) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	// The limit holds across chunks.
	if _, err := Decode(b, DecodeOptions{MaxDecompressed: len(body) - 1}); !isTooLarge(err) {
		t.Errorf("over the limit across chunks: %v, want ErrTooLarge", err)
	}
}

// TestSetLogAppendTime: a stamped batch stays valid, and every record
// decodes with the broker's time, compressed or not.
func TestSetLogAppendTime(t *testing.T) {
	for _, c := range []Compression{None, Zstd} {
		b, err := Encode([]Record{{Value: []byte("a"), Timestamp: time.UnixMilli(1000)}, {Value: []byte("b"), Timestamp: time.UnixMilli(5000)}},
			EncodeOptions{Compression: c, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1})
		if err != nil {
			t.Fatal(err)
		}
		const now = 1_800_000_000_000
		SetLogAppendTime(b, now)
		h, err := Validate(b, ValidateOptions{})
		if err != nil {
			t.Fatalf("%v: stamped batch invalid: %v", c, err)
		}
		if !h.IsLogAppendTime() || h.MaxTimestamp != now {
			t.Fatalf("%v: header %+v", c, h)
		}
		recs, err := Decode(b, DecodeOptions{})
		if err != nil || len(recs) != 2 {
			t.Fatalf("%v: %v %v", c, recs, err)
		}
		for _, r := range recs {
			if r.Timestamp.UnixMilli() != now {
				t.Fatalf("%v: record %s not stamped", c, r)
			}
		}
	}
}
