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
	}
	plain := encode(f, sampleRecords(), None)
	f.Add(withPayload(plain, Snappy, xerial(plain[HeaderSize:HeaderSize+50], plain[HeaderSize+50:])))
	f.Add(rawBatch(f, rawRecord(0, -5, 0, nil, nil), 1, nil))
	f.Add([]byte{})
}

// FuzzDecode: Decode never panics; a batch it accepts, Validate (with
// AllowControl) accepts too; and re-encoding the decoded records,
// uncompressed with the same timestamps, gives a batch that decodes to the
// same records.
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
	h, verr := Validate(b, ValidateOptions{MaxDecompressed: fuzzLimit, AllowControl: true})
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
