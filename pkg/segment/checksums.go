package segment

import (
	"fmt"
	"hash/crc32"

	"github.com/stratalog/strata/pkg/record"
)

// RangeSum is the checksum of the batches whose base offsets fall in one
// run of offsets [From, From+step).
type RangeSum struct {
	From       int64  // the run's first offset
	FirstBatch int64  // base offset of its first batch
	Batches    int64  // batches in the run
	Bytes      int64  // their bytes
	CRC        uint32 // CRC-32C of their bytes, in offset order
}

// checksumReadBytes sizes the reads Checksums makes.
const checksumReadBytes = 4 << 20

// Checksums reads the batches whose base offsets are in [from, to) and
// returns a RangeSum for each run of step offsets that holds any, in order.
// Replicas that agree return the same sums for the same arguments: every
// replica stores the same batches at the same offsets, base offset
// included, and compacts them the same way. A batch that starts before
// from is left out. Reads are CRC-checked, so damage returns its
// *CorruptionError.
func (l *Log) Checksums(from, to, step int64) ([]RangeSum, error) {
	if step < 1 || to < from {
		return nil, fmt.Errorf("segment: checksums of [%d, %d) by %d: bad range", from, to, step)
	}
	var out []RangeSum
	off := from
	for off < to {
		b, err := l.Read(off, to, checksumReadBytes)
		if err != nil {
			return nil, err
		}
		if len(b) == 0 {
			break
		}
		for len(b) > 0 {
			batch, h, rest, err := record.Next(b)
			if err != nil {
				return nil, fmt.Errorf("segment: checksums at offset %d: %w", off, err)
			}
			b = rest
			off = h.NextOffset()
			if h.BaseOffset < from || h.BaseOffset >= to {
				continue
			}
			run := from + (h.BaseOffset-from)/step*step
			if len(out) == 0 || out[len(out)-1].From != run {
				out = append(out, RangeSum{From: run, FirstBatch: h.BaseOffset})
			}
			r := &out[len(out)-1]
			r.Batches++
			r.Bytes += int64(len(batch))
			r.CRC = crc32.Update(r.CRC, castagnoli, batch)
		}
	}
	return out, nil
}
