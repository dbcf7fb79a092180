package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Codecs come from klauspost/compress (gzip, snappy via s2's compatible
// encoder, zstd) and pierrec/lz4 (LZ4 frames, as Kafka writes them): the
// same libraries franz-go uses, well kept and pure Go, so static builds stay
// possible.

var (
	zstdEncOnce sync.Once
	zstdEnc     *zstd.Encoder
)

func zstdEncoder() *zstd.Encoder {
	zstdEncOnce.Do(func() {
		zstdEnc, _ = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	})
	return zstdEnc
}

// Pooled codec state: a gzip writer carries ~800 KiB of tables and an lz4
// reader its block buffers; allocating them per batch dominated the cost of
// small batches, which compaction re-encodes and decodes by the million.
var (
	gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}
	lz4Readers  = sync.Pool{New: func() any { return lz4.NewReader(nil) }}
)

func compress(c Compression, src []byte) ([]byte, error) {
	switch c {
	case None:
		return src, nil
	case Gzip:
		var buf bytes.Buffer
		w := gzipWriters.Get().(*gzip.Writer)
		w.Reset(&buf)
		if _, err := w.Write(src); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		gzipWriters.Put(w)
		return buf.Bytes(), nil
	case Snappy:
		return s2.EncodeSnappy(nil, src), nil
	case LZ4:
		var buf bytes.Buffer
		w := lz4.NewWriter(&buf)
		if _, err := w.Write(src); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	case Zstd:
		return zstdEncoder().EncodeAll(src, nil), nil
	}
	return nil, fmt.Errorf("record: unknown compression %d", c)
}

// xerialMagic starts snappy data framed the way the Java client writes it.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

// decompress inflates src, failing with ErrTooLarge past limit bytes (a
// compression bomb must not exhaust the broker's memory).
func decompress(c Compression, src []byte, limit int) ([]byte, error) {
	switch c {
	case None:
		return src, nil
	case Gzip:
		r, err := gzip.NewReader(bytes.NewReader(src))
		if err != nil {
			return nil, malformed("gzip: %v", err)
		}
		return readLimited(r, limit, codecError("gzip"))
	case Snappy:
		if bytes.HasPrefix(src, xerialMagic) {
			return snappyXerial(src[len(xerialMagic):], limit)
		}
		return snappyBlock(src, limit)
	case LZ4:
		r := lz4Readers.Get().(*lz4.Reader)
		r.Reset(bytes.NewReader(src))
		out, err := readLimited(r, limit, codecError("lz4"))
		r.Reset(nil) // drop the reference to src
		lz4Readers.Put(r)
		return out, err
	case Zstd:
		r, err := zstd.NewReader(bytes.NewReader(src), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(limit)+1))
		if err != nil {
			return nil, zstdError(err, limit)
		}
		defer r.Close()
		return readLimited(r, limit, func(err error) error { return zstdError(err, limit) })
	}
	return nil, malformed("unknown compression %d", c)
}

// zstdError classifies a zstd failure. The decoder refuses up front a frame
// that declares more content, or a larger window, than the limit: that is a
// batch too large, not a malformed one.
func zstdError(err error, limit int) error {
	if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
		return fmt.Errorf("%w: decompressed records exceed %d bytes (zstd: %v)", ErrTooLarge, limit, err)
	}
	return malformed("zstd: %v", err)
}

// codecError reports a codec's failure as a malformed batch.
func codecError(codec string) func(error) error {
	return func(err error) error { return malformed("%s: %v", codec, err) }
}

// readLimited reads r to its end, but no further than limit bytes; classify
// turns a read error into the package's.
func readLimited(r io.Reader, limit int, classify func(error) error) ([]byte, error) {
	out, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, classify(err)
	}
	if len(out) > limit {
		return nil, fmt.Errorf("%w: decompressed records exceed %d bytes", ErrTooLarge, limit)
	}
	return out, nil
}

func snappyBlock(src []byte, limit int) ([]byte, error) {
	n, err := s2.DecodedLen(src)
	if err != nil {
		return nil, malformed("snappy: %v", err)
	}
	if n > limit {
		return nil, fmt.Errorf("%w: decompressed records exceed %d bytes", ErrTooLarge, limit)
	}
	out, err := s2.Decode(make([]byte, n), src)
	if err != nil {
		return nil, malformed("snappy: %v", err)
	}
	return out, nil
}

// snappyXerial decodes xerial framing: 8-byte magic (already stripped),
// 4-byte version, 4-byte compatible version, then {u32 length, snappy block}*.
func snappyXerial(src []byte, limit int) ([]byte, error) {
	if len(src) < 8 {
		return nil, malformed("snappy: short xerial header")
	}
	src = src[8:]
	var out []byte
	for len(src) > 0 {
		if len(src) < 4 {
			return nil, malformed("snappy: short xerial chunk length")
		}
		n := binary.BigEndian.Uint32(src)
		src = src[4:]
		if uint64(n) > uint64(len(src)) {
			return nil, malformed("snappy: xerial chunk of %d bytes, %d present", n, len(src))
		}
		chunk, err := snappyBlock(src[:n], limit-len(out))
		if err != nil {
			return nil, err
		}
		out = append(out, chunk...)
		src = src[n:]
	}
	return out, nil
}
