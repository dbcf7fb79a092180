package record

import (
	"bytes"
	"testing"
	"time"
)

// fuzzLimit bounds what the fuzz targets decompress, so that a target's
// memory is bounded by its input and this limit.
const fuzzLimit = 1 << 20

// addSeeds seeds f with a valid batch of each codec, a control batch, an
// xerial-framed one, and mutations of them that pass the CRC.
func addSeeds(f *testing.F) {
	for _, c := range allCodecs {
		b := encode(f, sampleRecords(), c)
		f.Add(b)
		f.Add(encode(f, []Record{{Value: []byte("x")}}, c))
		f.Add(fix(b, func(b []byte) { be.PutUint16(b[offAttributes:], uint16(int16(c)|attrControl)) }))
		f.Add(fix(b, func(b []byte) { be.PutUint16(b[offAttributes:], uint16(int16(c)|attrLogAppendTime)) }))
		f.Add(fix(b, func(b []byte) { be.PutUint32(b[offRecordCount:], 1000) }))
		f.Add(fix(b, func(b []byte) { b[len(b)-1] ^= 1 }))
		f.Add(b[:len(b)-1])
		// Compacted: some records kept, none kept.
		for _, keep := range []func(Record) bool{
			func(r Record) bool { return r.Offset%2 == 1 },
			func(Record) bool { return false },
		} {
			out, _, err := Filter(b, DecodeOptions{}, keep)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(out)
		}
	}
	plain := encode(f, sampleRecords(), None)
	f.Add(withPayload(plain, Snappy, xerial(plain[HeaderSize:HeaderSize+50], plain[HeaderSize+50:])))
	f.Add(rawBatch(f, rawRecord(0, -5, 0, nil, nil), 1, nil))
	f.Add([]byte{})
}

// FuzzDecode: Decode never panics; a batch it accepts, Validate (with
// AllowControl and Compacted) accepts too; the records' offsets strictly
// increase within the batch; and re-encoding the decoded records of a full
// batch, uncompressed with the same timestamps, gives a batch that decodes
// to the same records.
func FuzzDecode(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecode(t, b)
		if fixed, ok := withCRC(b); ok {
			checkDecode(t, fixed)
		}
	})
}

// withCRC returns a copy of b with the CRC recomputed, so that the fuzzer's
// mutations reach the checks behind the CRC instead of all failing on it.
func withCRC(b []byte) ([]byte, bool) {
	if len(b) < HeaderSize {
		return nil, false
	}
	return fix(b, func([]byte) {}), true
}

func checkDecode(t *testing.T, b []byte) {
	recs, err := Decode(b, DecodeOptions{MaxDecompressed: fuzzLimit})
	if err != nil {
		if !isMalformed(err) && !isTooLarge(err) && err != ErrCorrupt {
			t.Fatalf("Decode: error %v is none of the package's", err)
		}
		return
	}
	h, verr := Validate(b, ValidateOptions{MaxDecompressed: fuzzLimit, AllowControl: true, Compacted: true})
	if verr != nil {
		t.Fatalf("Decode accepted the batch, Validate: %v", verr)
	}
	if h.IsControl() {
		if len(recs) != 0 {
			t.Fatalf("control batch decoded to %d records", len(recs))
		}
		return
	}
	if len(recs) != int(h.RecordCount) {
		t.Fatalf("%d records, header counts %d", len(recs), h.RecordCount)
	}
	for i, r := range recs {
		if r.Offset < h.BaseOffset || r.Offset > h.LastOffset() || i > 0 && r.Offset <= recs[i-1].Offset {
			t.Fatalf("record %d at offset %d, batch [%d, %d]", i, r.Offset, h.BaseOffset, h.LastOffset())
		}
	}
	if int64(h.RecordCount) != int64(h.LastOffsetDelta)+1 {
		if _, err := Validate(b, ValidateOptions{MaxDecompressed: fuzzLimit, AllowControl: true}); err == nil {
			t.Fatal("strict Validate accepted a compacted batch")
		}
		return // offsets with gaps: Encode cannot rebuild them
	}
	// A record whose timestamp is the zero time would be re-encoded
	// with the clock: make the clock say the zero time too.
	again, err := Encode(recs, EncodeOptions{Now: func() time.Time { return time.Time{} }})
	if err != nil {
		t.Fatalf("re-encode: %v", err)
	}
	SetBaseOffset(again, h.BaseOffset)
	recs2, err := Decode(again, DecodeOptions{MaxDecompressed: max(fuzzLimit, len(again))})
	if err != nil {
		t.Fatalf("decode of the re-encoded batch: %v", err)
	}
	checkRecords(t, recs2, recs)
}

// FuzzValidate: Validate never panics, fails only with the package's
// errors, and allocates within a bound set by its input and limit.
func FuzzValidate(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > fuzzLimit {
			return
		}
		checkValidate(t, b)
		if fixed, ok := withCRC(b); ok {
			checkValidate(t, fixed)
		}
	})
}

func checkValidate(t *testing.T, b []byte) {
	var err error
	allocated := allocatedByNoGC(func() {
		_, err = Validate(b, ValidateOptions{MaxDecompressed: fuzzLimit})
	})
	if err != nil && !isMalformed(err) && !isTooLarge(err) && err != ErrCorrupt {
		t.Fatalf("Validate: error %v is none of the package's", err)
	}
	// Decompression buffers (up to 4 MiB lz4 blocks, a 1 MiB output
	// grown by doubling) and nothing in proportion to a count.
	if allocated > 32<<20 {
		t.Fatalf("Validate of %d bytes allocated %d MiB", len(b), allocated>>20)
	}
}

// TestSeedsValid keeps the fuzz seeds honest: the plain ones are valid.
func TestSeedsValid(t *testing.T) {
	for _, c := range allCodecs {
		b := encode(t, sampleRecords(), c)
		if _, err := Validate(b, ValidateOptions{MaxDecompressed: fuzzLimit}); err != nil {
			t.Errorf("%s seed: %v", c, err)
		}
	}
	plain := encode(t, sampleRecords(), None)
	x := withPayload(plain, Snappy, xerial(plain[HeaderSize:HeaderSize+50], plain[HeaderSize+50:]))
	if got, err := Decode(x, DecodeOptions{}); err != nil || !bytes.Equal(got[0].Key, []byte("k0")) {
		t.Errorf("xerial seed: %v", err)
	}
}

// FuzzFilter filters arbitrary batches with a keep mask. Property: Filter
// never panics and fails only with the package's errors; what it returns
// passes Validate for compacted batches (and, when a record was removed,
// not the strict one), decodes to exactly the kept records with their
// offsets and timestamps, keeps the batch's offset range, and filtering it
// again keeping everything returns it unchanged.
func FuzzFilter(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > fuzzLimit {
			return
		}
		checkFilter(t, b, 0x5)
		if fixed, ok := withCRC(b); ok {
			for _, mask := range []uint64{0, 0x5, 1<<64 - 1} {
				checkFilter(t, fixed, mask)
			}
		}
	})
}

func checkFilter(t *testing.T, b []byte, mask uint64) {
	opts := DecodeOptions{MaxDecompressed: fuzzLimit}
	recs, derr := Decode(b, opts)
	var want []Record
	i := 0
	out, removed, err := Filter(b, opts, func(r Record) bool {
		k := mask&(1<<(i%64)) != 0
		i++
		if k {
			want = append(want, r)
		}
		return k
	})
	if (err == nil) != (derr == nil) {
		t.Fatalf("Filter: %v, Decode: %v", err, derr)
	}
	if err != nil {
		if !isMalformed(err) && !isTooLarge(err) && err != ErrCorrupt {
			t.Fatalf("Filter: error %v is none of the package's", err)
		}
		return
	}
	h, _ := ParseHeader(b)
	if h.IsControl() {
		if removed != 0 || !bytes.Equal(out, b) {
			t.Fatal("Filter changed a control batch")
		}
		return
	}
	if removed != len(recs)-len(want) {
		t.Fatalf("removed %d, want %d", removed, len(recs)-len(want))
	}
	oh, err := Validate(out, ValidateOptions{MaxDecompressed: max(fuzzLimit, len(out)), AllowControl: true, Compacted: true})
	if err != nil {
		t.Fatalf("Validate of the filtered batch: %v", err)
	}
	if oh.BaseOffset != h.BaseOffset || oh.LastOffsetDelta != h.LastOffsetDelta || oh.MaxTimestamp != h.MaxTimestamp {
		t.Fatalf("filtered header %+v, from %+v", oh, h)
	}
	if removed > 0 {
		if _, err := Validate(out, ValidateOptions{MaxDecompressed: max(fuzzLimit, len(out)), AllowControl: true}); err == nil {
			t.Fatal("strict Validate accepted a filtered batch")
		}
	}
	got, err := Decode(out, DecodeOptions{MaxDecompressed: max(fuzzLimit, len(out))})
	if err != nil {
		t.Fatalf("Decode of the filtered batch: %v", err)
	}
	checkRecords(t, got, want)
	again, n, err := Filter(out, DecodeOptions{MaxDecompressed: max(fuzzLimit, len(out))}, func(Record) bool { return true })
	if err != nil || n != 0 || !bytes.Equal(again, out) {
		t.Fatalf("refilter keeping all: %d removed, %v", n, err)
	}
}
