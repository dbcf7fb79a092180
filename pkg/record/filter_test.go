package record

import (
	"bytes"
	"testing"
)

// TestFilter keeps subsets of a batch of each codec. The result keeps the
// batch's offsets, timestamps and codec, decodes to exactly the kept
// records at their offsets, is refused by the strict Validate and accepted
// with Compacted, and is stable: filtering it again with the same
// decisions returns the same bytes.
func TestFilter(t *testing.T) {
	recs := sampleRecords()
	cases := []struct {
		name string
		keep func(i int) bool
	}{
		{"all", func(int) bool { return true }},
		{"none", func(int) bool { return false }},
		{"first", func(i int) bool { return i == 0 }},
		{"last", func(i int) bool { return i == len(recs)-1 }},
		{"odd", func(i int) bool { return i%2 == 1 }},
		{"all but the last", func(i int) bool { return i < len(recs)-1 }},
	}
	for _, c := range allCodecs {
		b := encode(t, recs, c)
		SetBaseOffset(b, 100)
		h, _ := ParseHeader(b)
		for _, tc := range cases {
			t.Run(c.String()+"/"+tc.name, func(t *testing.T) {
				var want []Record
				for i, r := range wantRecords(recs, 100) {
					if tc.keep(i) {
						want = append(want, r)
					}
				}
				keep := func(r Record) bool { return tc.keep(int(r.Offset - 100)) }
				out, removed, err := Filter(b, DecodeOptions{}, keep)
				if err != nil {
					t.Fatal(err)
				}
				if removed != len(recs)-len(want) {
					t.Fatalf("removed %d, want %d", removed, len(recs)-len(want))
				}
				if removed == 0 {
					if &out[0] != &b[0] {
						t.Fatal("nothing removed, yet the batch was rewritten")
					}
					return
				}
				oh, err := Validate(out, ValidateOptions{Compacted: true})
				if err != nil {
					t.Fatalf("Validate(Compacted): %v", err)
				}
				if _, err := Validate(out, ValidateOptions{}); !isMalformed(err) {
					t.Fatalf("strict Validate: %v, want malformed", err)
				}
				wantCodec := c
				if len(want) == 0 {
					wantCodec = None // nothing to compress, as Kafka writes it
				}
				if oh.BaseOffset != 100 || oh.LastOffsetDelta != h.LastOffsetDelta || oh.NextOffset() != h.NextOffset() ||
					oh.BaseTimestamp != h.BaseTimestamp || oh.MaxTimestamp != h.MaxTimestamp || oh.ProducerID != h.ProducerID ||
					oh.BaseSequence != h.BaseSequence || oh.LeaderEpoch != h.LeaderEpoch || oh.Compression() != wantCodec ||
					int(oh.RecordCount) != len(want) {
					t.Fatalf("header %+v, from %+v", oh, h)
				}
				got, err := Decode(out, DecodeOptions{})
				if err != nil {
					t.Fatal(err)
				}
				checkRecords(t, got, want)
				again, n, err := Filter(out, DecodeOptions{}, keep)
				if err != nil || n != 0 || !bytes.Equal(again, out) {
					t.Fatalf("filtering again: %d removed, %v", n, err)
				}
			})
		}
	}
}

// TestFilterControl: a control batch comes back as it is.
func TestFilterControl(t *testing.T) {
	b := fix(encode(t, sampleRecords(), None), func(b []byte) { be.PutUint16(b[offAttributes:], attrControl) })
	out, n, err := Filter(b, DecodeOptions{}, func(Record) bool { t.Fatal("keep called on a control batch"); return false })
	if err != nil || n != 0 || !bytes.Equal(out, b) {
		t.Fatalf("Filter(control) = %d, %v", n, err)
	}
}

// TestCompactedRejects: what even the compacted rules refuse.
func TestCompactedRejects(t *testing.T) {
	rec := func(off int64) []byte { return rawRecord(0, 0, off, []byte("k"), []byte("v")) }
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	setLOD := func(v uint32) func([]byte) { return func(b []byte) { be.PutUint32(b[offLastOffsetDelta:], v) } }
	ok := []struct {
		name  string
		batch []byte
	}{
		{"gaps", rawBatch(t, cat(rec(0), rec(3)), 2, setLOD(4))},
		{"empty", rawBatch(t, nil, 0, setLOD(9))},
		{"one record, last delta", rawBatch(t, rec(7), 1, setLOD(7))},
		{"max timestamp above the kept records", rawBatch(t, rec(2), 1, func(b []byte) {
			be.PutUint32(b[offLastOffsetDelta:], 2)
			be.PutUint64(b[offMaxTimestamp:], be.Uint64(b[offMaxTimestamp:])+10)
		})},
	}
	for _, c := range ok {
		if _, err := Validate(c.batch, ValidateOptions{Compacted: true}); err != nil {
			t.Errorf("%s: Validate(Compacted): %v", c.name, err)
		}
		if _, err := Decode(c.batch, DecodeOptions{}); err != nil {
			t.Errorf("%s: Decode: %v", c.name, err)
		}
		if _, err := Validate(c.batch, ValidateOptions{}); !isMalformed(err) {
			t.Errorf("%s: strict Validate: %v, want malformed", c.name, err)
		}
	}
	bad := []struct {
		name  string
		batch []byte
	}{
		{"more records than offsets", rawBatch(t, cat(rec(0), rec(1), rec(2)), 3, setLOD(1))},
		{"offset delta beyond the last", rawBatch(t, cat(rec(0), rec(5)), 2, setLOD(4))},
		{"offset deltas equal", rawBatch(t, cat(rec(1), rec(1)), 2, setLOD(4))},
		{"offset deltas decreasing", rawBatch(t, cat(rec(2), rec(1)), 2, setLOD(4))},
		{"negative offset delta", rawBatch(t, rec(-1), 1, setLOD(4))},
		{"negative last offset delta", rawBatch(t, nil, 0, setLOD(1<<32-1))},
		{"negative record count", rawBatch(t, nil, -1, setLOD(4))},
		{"max timestamp below a record", rawBatch(t, rec(0), 1, func(b []byte) {
			be.PutUint32(b[offLastOffsetDelta:], 2)
			be.PutUint64(b[offMaxTimestamp:], be.Uint64(b[offMaxTimestamp:])-1)
		})},
		{"full batch, max timestamp above", rawBatch(t, cat(rec(0), rec(1)), 2, func(b []byte) {
			be.PutUint64(b[offMaxTimestamp:], be.Uint64(b[offMaxTimestamp:])+1)
		})},
	}
	for _, c := range bad {
		if _, err := Validate(c.batch, ValidateOptions{Compacted: true}); !isMalformed(err) {
			t.Errorf("%s: Validate(Compacted): %v, want malformed", c.name, err)
		}
		if _, err := Decode(c.batch, DecodeOptions{}); !isMalformed(err) {
			t.Errorf("%s: Decode: %v, want malformed", c.name, err)
		}
	}
}
