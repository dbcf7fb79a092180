package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"runtime"
	"strconv"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

var be = binary.BigEndian

func isMalformed(err error) bool {
	var me *MalformedError
	return errors.Is(err, ErrMalformed) && errors.As(err, &me)
}

func isTooLarge(err error) bool { return errors.Is(err, ErrTooLarge) }

// fix returns a copy of b changed by mutate, with its CRC recomputed, so
// that a test reaches the check it targets rather than the CRC's.
func fix(b []byte, mutate func(b []byte)) []byte {
	b = bytes.Clone(b)
	mutate(b)
	be.PutUint32(b[offCRC:], Checksum(b))
	return b
}

// withPayload replaces the records of template with payload compressed
// with c, fixing length and CRC.
func withPayload(template []byte, c Compression, payload []byte) []byte {
	b := append(bytes.Clone(template[:HeaderSize]), payload...)
	return fix(b, func(b []byte) {
		be.PutUint32(b[offLength:], uint32(len(b)-lengthFieldEnd))
		be.PutUint16(b[offAttributes:], uint16(c))
	})
}

// rawBatch frames an uncompressed body of count records by hand: base
// timestamp and max timestamp testNow, so records with timestamp delta 0
// pass. mutate, if not nil, runs before the CRC is computed.
func rawBatch(t testing.TB, body []byte, count int32, mutate func(b []byte)) []byte {
	t.Helper()
	b := make([]byte, HeaderSize, HeaderSize+len(body))
	be.PutUint32(b[offLength:], uint32(HeaderSize-lengthFieldEnd+len(body)))
	be.PutUint32(b[offLeaderEpoch:], math.MaxUint32)
	b[offMagic] = Magic
	be.PutUint32(b[offLastOffsetDelta:], uint32(count-1))
	be.PutUint64(b[offBaseTimestamp:], uint64(testNow.UnixMilli()))
	be.PutUint64(b[offMaxTimestamp:], uint64(testNow.UnixMilli()))
	be.PutUint64(b[offProducerID:], math.MaxUint64)
	be.PutUint16(b[offProducerEpoch:], math.MaxUint16)
	be.PutUint32(b[offBaseSequence:], math.MaxUint32)
	be.PutUint32(b[offRecordCount:], uint32(count))
	b = append(b, body...)
	return fix(b, func(b []byte) {
		if mutate != nil {
			mutate(b)
		}
	})
}

// rawRecord encodes one record by hand; a nil key or value is null.
func rawRecord(attr byte, tsDelta, offDelta int64, key, value []byte) []byte {
	f := []byte{attr}
	f = binary.AppendVarint(f, tsDelta)
	f = binary.AppendVarint(f, offDelta)
	f = appendBytes(f, key)
	f = appendBytes(f, value)
	f = binary.AppendVarint(f, 0)
	return withLength(f)
}

// withLength prefixes record fields with their length.
func withLength(fields []byte) []byte {
	return append(binary.AppendVarint(nil, int64(len(fields))), fields...)
}

func varints(vs ...int64) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.AppendVarint(b, v)
	}
	return b
}

// TestRejects: every way a batch can be wrong, with the error class it
// must give. Framing cases recompute the CRC so that the framing check, not
// the CRC, is what rejects them.
func TestRejects(t *testing.T) {
	valid := encode(t, sampleRecords(), None)
	zvalid := encode(t, sampleRecords(), Zstd)
	rec0 := rawRecord(0, 0, 0, []byte("k"), []byte("v"))
	rec1 := rawRecord(0, 0, 1, nil, []byte("v"))
	two := append(bytes.Clone(rec0), rec1...)
	setU16 := func(off int, v uint16) func([]byte) { return func(b []byte) { be.PutUint16(b[off:], v) } }
	setU32 := func(off int, v uint32) func([]byte) { return func(b []byte) { be.PutUint32(b[off:], v) } }
	flip := func(i int) []byte { b := bytes.Clone(valid); b[i] ^= 0x10; return b }

	type tc struct {
		name  string
		batch []byte
		opts  ValidateOptions
		want  error // ErrMalformed, ErrCorrupt or ErrTooLarge
	}
	cases := []tc{
		{"empty", nil, ValidateOptions{}, ErrMalformed},
		{"short header", valid[:HeaderSize-1], ValidateOptions{}, ErrMalformed},
		{"bad magic", fix(valid, func(b []byte) { b[offMagic] = 1 }), ValidateOptions{}, ErrMalformed},
		{"length below header", fix(valid, setU32(offLength, 10)), ValidateOptions{}, ErrMalformed},
		{"length negative", fix(valid, setU32(offLength, math.MaxUint32)), ValidateOptions{}, ErrMalformed},
		{"length shorter than slice", fix(valid, setU32(offLength, uint32(len(valid)-lengthFieldEnd-1))), ValidateOptions{}, ErrMalformed},
		{"length longer than slice", fix(valid, setU32(offLength, uint32(len(valid)-lengthFieldEnd+1))), ValidateOptions{}, ErrMalformed},
		{"slice longer than length", append(bytes.Clone(valid), 0), ValidateOptions{}, ErrMalformed},
		{"truncated", valid[:len(valid)-1], ValidateOptions{}, ErrMalformed},
		{"unknown attribute bit 7", fix(valid, setU16(offAttributes, 0x80)), ValidateOptions{AllowControl: true}, ErrMalformed},
		{"unknown attribute bit 8", fix(valid, setU16(offAttributes, 0x100)), ValidateOptions{AllowControl: true}, ErrMalformed},
		{"unknown attribute bit 15", fix(valid, setU16(offAttributes, 0x8000)), ValidateOptions{AllowControl: true}, ErrMalformed},
		{"control from producer", fix(valid, setU16(offAttributes, attrControl)), ValidateOptions{}, ErrMalformed},
		{"transactional from producer", fix(valid, setU16(offAttributes, attrTransactional)), ValidateOptions{}, ErrMalformed},
		{"delete horizon from producer", fix(valid, setU16(offAttributes, attrDeleteHorizon)), ValidateOptions{}, ErrMalformed},
		{"record count 0", fix(valid, func(b []byte) {
			be.PutUint32(b[offRecordCount:], 0)
			be.PutUint32(b[offLastOffsetDelta:], math.MaxUint32)
		}), ValidateOptions{}, ErrMalformed},
		{"record count negative", fix(valid, func(b []byte) {
			be.PutUint32(b[offRecordCount:], math.MaxUint32)
			be.PutUint32(b[offLastOffsetDelta:], math.MaxUint32-1)
		}), ValidateOptions{}, ErrMalformed},
		{"last offset delta mismatch", fix(valid, setU32(offLastOffsetDelta, 2)), ValidateOptions{}, ErrMalformed},
		{"record count beyond bytes", fix(valid, func(b []byte) { be.PutUint32(b[offRecordCount:], 1000); be.PutUint32(b[offLastOffsetDelta:], 999) }), ValidateOptions{}, ErrMalformed},
		{"record count max", fix(valid, func(b []byte) {
			be.PutUint32(b[offRecordCount:], math.MaxInt32)
			be.PutUint32(b[offLastOffsetDelta:], math.MaxInt32-1)
		}), ValidateOptions{}, ErrMalformed},
		{"one record fewer than count", rawBatch(t, rec0, 2, nil), ValidateOptions{}, ErrMalformed},
		{"no records at all", rawBatch(t, nil, 1, nil), ValidateOptions{}, ErrMalformed},
		{"record length varint overflow", rawBatch(t, bytes.Repeat([]byte{0xff}, 11), 1, nil), ValidateOptions{}, ErrMalformed},
		{"record length varint truncated", rawBatch(t, append([]byte{0xff, 0xff}, make([]byte, 5)...)[:2], 1, nil), ValidateOptions{}, ErrMalformed},
		{"timestamp delta varint overflow", rawBatch(t, withLength(append([]byte{0}, bytes.Repeat([]byte{0xff}, 11)...)), 1, nil), ValidateOptions{}, ErrMalformed},
		{"record length 0", rawBatch(t, append([]byte{0}, make([]byte, 6)...), 1, nil), ValidateOptions{}, ErrMalformed},
		{"record length negative", rawBatch(t, append(varints(-3), make([]byte, 6)...), 1, nil), ValidateOptions{}, ErrMalformed},
		{"record length past end", rawBatch(t, append(varints(50), make([]byte, 6)...), 1, nil), ValidateOptions{}, ErrMalformed},
		{"key length -2", rawBatch(t, withLength(append([]byte{0}, varints(0, 0, -2, -1, 0)...)), 1, nil), ValidateOptions{}, ErrMalformed},
		{"key length past record", rawBatch(t, withLength(append([]byte{0}, varints(0, 0, 100, -1, 0)...)), 1, nil), ValidateOptions{}, ErrMalformed},
		{"key length past record, inside batch", rawBatch(t, append(withLength(append([]byte{0}, varints(0, 0, 3)...)), rec1...), 2, nil), ValidateOptions{}, ErrMalformed},
		{"value length -2", rawBatch(t, withLength(append([]byte{0}, varints(0, 0, -1, -2, 0)...)), 1, nil), ValidateOptions{}, ErrMalformed},
		{"null header key", rawBatch(t, withLength(append([]byte{0}, varints(0, 0, -1, -1, 1, -1, -1)...)), 1, nil), ValidateOptions{}, ErrMalformed},
		{"header count negative", rawBatch(t, withLength(append([]byte{0}, varints(0, 0, -1, -1, -1)...)), 1, nil), ValidateOptions{}, ErrMalformed},
		{"header count past record", rawBatch(t, withLength(append([]byte{0}, varints(0, 0, -1, -1, 2, 0, -1)...)), 1, nil), ValidateOptions{}, ErrMalformed},
		{"header count huge", rawBatch(t, withLength(append([]byte{0}, varints(0, 0, -1, -1, math.MaxInt64)...)), 1, nil), ValidateOptions{}, ErrMalformed},
		{"bytes after last record", rawBatch(t, append(bytes.Clone(two), 0), 2, nil), ValidateOptions{}, ErrMalformed},
		{"record after last record", rawBatch(t, append(bytes.Clone(two), rawRecord(0, 0, 2, nil, nil)...), 2, nil), ValidateOptions{}, ErrMalformed},
		{"bytes inside record", rawBatch(t, withLength(append([]byte{0}, varints(0, 0, -1, -1, 0, 0)...)), 1, nil), ValidateOptions{}, ErrMalformed},
		{"offset delta wrong", rawBatch(t, append(bytes.Clone(rec0), rawRecord(0, 0, 5, nil, nil)...), 2, nil), ValidateOptions{}, ErrMalformed},
		{"offset deltas swapped", rawBatch(t, append(rawRecord(0, 0, 1, nil, nil), rawRecord(0, 0, 0, nil, nil)...), 2, nil), ValidateOptions{}, ErrMalformed},
		{"max timestamp too high", fix(valid, func(b []byte) { be.PutUint64(b[offMaxTimestamp:], be.Uint64(b[offMaxTimestamp:])+1) }), ValidateOptions{}, ErrMalformed},
		{"max timestamp too low", fix(valid, func(b []byte) { be.PutUint64(b[offMaxTimestamp:], be.Uint64(b[offMaxTimestamp:])-1) }), ValidateOptions{}, ErrMalformed},
		{"base timestamp moved", fix(valid, func(b []byte) { be.PutUint64(b[offBaseTimestamp:], be.Uint64(b[offBaseTimestamp:])+1) }), ValidateOptions{}, ErrMalformed},
		{"over MaxBatchBytes", valid, ValidateOptions{MaxBatchBytes: len(valid) - 1}, ErrTooLarge},
		{"over MaxDecompressed", zvalid, ValidateOptions{MaxDecompressed: 10}, ErrTooLarge},
		{"crc field", flip(offCRC), ValidateOptions{}, ErrCorrupt},
		{"crc field last byte", flip(offCRC + 3), ValidateOptions{}, ErrCorrupt},
	}
	for c := Compression(5); c <= 7; c++ {
		cases = append(cases, tc{"codec " + strconv.Itoa(int(c)), fix(valid, setU16(offAttributes, uint16(c))), ValidateOptions{}, ErrMalformed})
	}
	for _, c := range allCodecs[1:] {
		b := encode(t, sampleRecords(), c)
		cases = append(cases,
			tc{c.String() + " garbage", withPayload(b, c, []byte("this is not compressed at all")), ValidateOptions{}, ErrMalformed},
			tc{c.String() + " empty payload", withPayload(b, c, nil), ValidateOptions{}, ErrMalformed},
			tc{c.String() + " truncated payload", withPayload(b, c, b[HeaderSize:len(b)-1]), ValidateOptions{}, ErrMalformed},
			tc{c.String() + " over MaxDecompressed", b, ValidateOptions{MaxDecompressed: 100}, ErrTooLarge},
		)
	}
	// The CRC covers bytes 21..end: attributes, every header field after
	// it, and the records.
	for _, i := range []int{offAttributes, offLastOffsetDelta + 3, offBaseTimestamp, offMaxTimestamp + 7, offProducerID, offProducerEpoch, offBaseSequence, offRecordCount + 3, HeaderSize, HeaderSize + 10, len(valid) - 1} {
		cases = append(cases, tc{"flip byte " + strconv.Itoa(i), flip(i), ValidateOptions{}, ErrCorrupt})
	}

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Validate(c.batch, c.opts)
			checkErr(t, "Validate", err, c.want)
			if c.opts.MaxBatchBytes != 0 || c.opts.AllowControl || c.want == ErrMalformed && isProducerOnly(c.batch) {
				return // Decode has no such option or rule
			}
			recs, err := Decode(c.batch, DecodeOptions{MaxDecompressed: c.opts.MaxDecompressed})
			checkErr(t, "Decode", err, c.want)
			if recs != nil {
				t.Errorf("Decode returned %d records with its error", len(recs))
			}
		})
	}
}

// isProducerOnly reports a well-formed control or transactional batch:
// Validate rejects it from producers; Decode reads it.
func isProducerOnly(b []byte) bool {
	h, err := ParseHeader(b)
	return err == nil && h.Attributes&(attrControl|attrTransactional|attrDeleteHorizon) != 0 && h.Attributes&^attrKnownMask == 0
}

func checkErr(t *testing.T, what string, err, want error) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%s accepted the batch, want %v", what, want)
	case !errors.Is(err, want):
		t.Errorf("%s: %v, want %v", what, err, want)
	case want == ErrMalformed && !isMalformed(err):
		t.Errorf("%s: %v is not a *MalformedError", what, err)
	case want != ErrMalformed && errors.Is(err, ErrMalformed):
		t.Errorf("%s: %v is also ErrMalformed", what, err)
	}
}

func TestMaxBatchBytesBoundary(t *testing.T) {
	valid := encode(t, sampleRecords(), None)
	if _, err := Validate(valid, ValidateOptions{MaxBatchBytes: len(valid)}); err != nil {
		t.Errorf("batch of exactly MaxBatchBytes: %v", err)
	}
	if _, err := Validate(valid, ValidateOptions{MaxDecompressed: len(valid) - HeaderSize}); err != nil {
		t.Errorf("records of exactly MaxDecompressed: %v", err)
	}
}

// TestDecodeLyingCountAllocation: a record count far beyond what the bytes
// hold must not size an allocation.
func TestDecodeLyingCountAllocation(t *testing.T) {
	body := make([]byte, 1<<20)
	b := rawBatch(t, body, math.MaxInt32, nil)
	allocated := allocatedBy(func() {
		if _, err := Decode(b, DecodeOptions{}); !isMalformed(err) {
			t.Errorf("Decode: %v, want ErrMalformed", err)
		}
	})
	if allocated > 1<<20 {
		t.Errorf("Decode of a 1 MiB batch claiming %d records allocated %d bytes", math.MaxInt32, allocated)
	}
}

// allocatedBy reports the bytes f allocates: an upper bound on the peak
// memory it needs.
func allocatedBy(f func()) uint64 {
	runtime.GC()
	return allocatedByNoGC(f)
}

// allocatedByNoGC is allocatedBy without the collection first: cheaper, for
// the fuzz targets.
func allocatedByNoGC(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

const bombSize = 100 << 20

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// streamBomb compresses bombSize zero bytes through w without holding them.
func streamBomb(t testing.TB, buf *bytes.Buffer, w io.WriteCloser) []byte {
	t.Helper()
	if _, err := io.CopyN(w, zeros{}, bombSize); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// snappyZeros hand-builds a snappy block of n zero bytes: one literal zero,
// then copies of 64 bytes at offset 1 (s2.EncodeSnappy would need all n
// bytes in memory).
func snappyZeros(n int) []byte {
	b := binary.AppendUvarint(nil, uint64(n))
	b = append(b, 0x00, 0x00) // literal of length 1: 0
	for n--; n > 0; n -= 64 {
		l := min(n, 64)
		b = append(b, byte(l-1)<<2|0x02, 1, 0) // copy, 2-byte offset 1
	}
	return b
}

func TestSnappyZerosBuilder(t *testing.T) {
	for _, n := range []int{1, 2, 65, 1000} {
		out, err := decompress(Snappy, snappyZeros(n), n)
		if err != nil || !bytes.Equal(out, make([]byte, n)) {
			t.Fatalf("snappyZeros(%d): %d bytes, %v", n, len(out), err)
		}
	}
}

// TestCompressionBomb: 100 MiB of zeros, compressed with each codec, is
// refused with ErrTooLarge under a 1 MiB limit, and refusing it allocates a
// few MiB, not 100.
func TestCompressionBomb(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 100 MiB bombs")
	}
	bombs := map[string]func() (Compression, []byte){
		"gzip": func() (Compression, []byte) {
			var buf bytes.Buffer
			return Gzip, streamBomb(t, &buf, gzip.NewWriter(&buf))
		},
		"gzip multistream": func() (Compression, []byte) {
			var buf bytes.Buffer
			one := streamBombN(t, &buf, gzip.NewWriter(&buf), 1<<20)
			return Gzip, bytes.Repeat(one, bombSize>>20)
		},
		"lz4": func() (Compression, []byte) {
			var buf bytes.Buffer
			return LZ4, streamBomb(t, &buf, lz4.NewWriter(&buf))
		},
		"zstd stream": func() (Compression, []byte) {
			var buf bytes.Buffer
			w, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1))
			if err != nil {
				t.Fatal(err)
			}
			return Zstd, streamBomb(t, &buf, w)
		},
		"zstd small window": func() (Compression, []byte) {
			var buf bytes.Buffer
			w, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(256<<10))
			if err != nil {
				t.Fatal(err)
			}
			return Zstd, streamBomb(t, &buf, w)
		},
		"zstd one frame": func() (Compression, []byte) {
			// A frame that declares its 100 MiB content size up front.
			var buf bytes.Buffer
			w, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
			if err != nil {
				t.Fatal(err)
			}
			w.ResetContentSize(&buf, bombSize)
			return Zstd, streamBomb(t, &buf, w)
		},
		"zstd many frames": func() (Compression, []byte) {
			// Frames of 512 KiB each pass the decoder's memory limit; only
			// the running total can stop them.
			enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
			if err != nil {
				t.Fatal(err)
			}
			return Zstd, bytes.Repeat(enc.EncodeAll(make([]byte, 512<<10), nil), bombSize/(512<<10))
		},
		"snappy": func() (Compression, []byte) { return Snappy, snappyZeros(bombSize) },
		"snappy xerial": func() (Compression, []byte) {
			out := append([]byte(nil), xerialMagic...)
			out = be.AppendUint32(out, 1)
			out = be.AppendUint32(out, 1)
			chunk := snappyZeros(32 << 10)
			for range bombSize / (32 << 10) {
				out = be.AppendUint32(out, uint32(len(chunk)))
				out = append(out, chunk...)
			}
			return Snappy, out
		},
	}
	template := encode(t, sampleRecords(), None)
	const limit = 1 << 20
	for name, build := range bombs {
		t.Run(name, func(t *testing.T) {
			c, payload := build()
			b := withPayload(template, c, payload)
			payload = nil
			for _, run := range []struct {
				what string
				f    func() error
			}{
				{"Validate", func() error { _, err := Validate(b, ValidateOptions{MaxDecompressed: limit}); return err }},
				{"Decode", func() error { _, err := Decode(b, DecodeOptions{MaxDecompressed: limit}); return err }},
			} {
				var err error
				allocated := allocatedBy(func() { err = run.f() })
				if !isTooLarge(err) {
					t.Errorf("%s of a %d-byte %s bomb: %v, want ErrTooLarge", run.what, len(b), name, err)
				}
				if allocated > 16<<20 {
					t.Errorf("%s of a %s bomb allocated %d MiB", run.what, name, allocated>>20)
				}
			}
		})
	}
}

func streamBombN(t testing.TB, buf *bytes.Buffer, w io.WriteCloser, n int64) []byte {
	t.Helper()
	if _, err := io.CopyN(w, zeros{}, n); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(buf.Bytes())
}

// benchRecords is 100 records of 1 KiB, half random, half repeated, so
// that compression has something to do.
func benchRecords() ([]Record, int64) {
	recs := make([]Record, 100)
	var n int64
	seed := uint64(1)
	for i := range recs {
		v := make([]byte, 1024)
		for j := range 512 {
			seed = seed*6364136223846793005 + 1442695040888963407
			v[j] = byte(seed >> 56)
		}
		recs[i] = Record{Key: []byte{byte(i)}, Value: v, Timestamp: testNow}
		n += int64(len(v) + 1)
	}
	return recs, n
}

func BenchmarkEncode(b *testing.B) {
	recs, n := benchRecords()
	for _, c := range []Compression{None, Zstd} {
		b.Run(c.String(), func(b *testing.B) {
			b.SetBytes(n)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Encode(recs, EncodeOptions{Compression: c}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	recs, n := benchRecords()
	for _, c := range []Compression{None, Zstd} {
		batch := encode(b, recs, c)
		b.Run(c.String(), func(b *testing.B) {
			b.SetBytes(n)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode(batch, DecodeOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkValidate(b *testing.B) {
	recs, n := benchRecords()
	for _, c := range []Compression{None, Zstd} {
		batch := encode(b, recs, c)
		b.Run(c.String(), func(b *testing.B) {
			b.SetBytes(n)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Validate(batch, ValidateOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
