package segment

import (
	"bufio"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"

	"github.com/stratalog/strata/pkg/record"
)

// cleaner is one Compact run: its rule, key map and counters. It reads
// segments through its own file descriptors, opened by path, so that a
// prefix truncation deleting a segment (or Close) under it does not
// disturb the read, and the writer never waits for it.
type cleaner struct {
	l       *Log
	ctx     context.Context
	opts    CompactOptions
	start   int64
	upTo    int64
	horizon int64 // tombstones in batches older than this expire
	keys    map[keyHash]int64
	stats   CompactStats
	pending int // bytes read or written, not yet passed to Throttle
}

// check stops the run when ctx is done or the log is closing.
func (c *cleaner) check() error {
	if err := c.ctx.Err(); err != nil {
		return err
	}
	if c.l.closing.Load() {
		return ErrClosed
	}
	return nil
}

// throttle accounts for n bytes of I/O, calling Throttle per whole chunk;
// flush passes the remainder.
func (c *cleaner) throttle(n int) error {
	if c.opts.Throttle == nil {
		return nil
	}
	c.pending += n
	for c.pending >= ThrottleChunk {
		if err := c.opts.Throttle(c.ctx, ThrottleChunk); err != nil {
			return err
		}
		c.pending -= ThrottleChunk
	}
	return nil
}

func (c *cleaner) flush() error {
	if c.opts.Throttle == nil || c.pending == 0 {
		return nil
	}
	n := c.pending
	c.pending = 0
	return c.opts.Throttle(c.ctx, n)
}

func (c *cleaner) read(n int) error {
	c.stats.BytesRead += int64(n)
	return c.throttle(n)
}

// open opens s for reading through a descriptor of the run's own. ok is
// false when the file is gone (deleted by a prefix truncation).
func (c *cleaner) open(s segSnap) (rs *segment, ok bool, err error) {
	f, err := os.Open(s.s.path + logSuffix)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return &segment{path: s.s.path, name: s.s.name, base: s.s.base, baseIndex: s.baseIndex, f: f}, true, nil
}

// index is pass 1 over s: it maps the keys of the records in [from, upTo)
// to their latest offset.
func (c *cleaner) index(s segSnap, from int64) error {
	rs, ok, err := c.open(s)
	if !ok {
		return err
	}
	defer rs.f.Close()
	fr := rs.reader(fileHeaderSize, s.size)
	var buf []byte
	for {
		if err := c.check(); err != nil {
			return err
		}
		pos := fr.pos
		h, payload, err := fr.next(buf[:0])
		if err == io.EOF {
			return c.flush()
		}
		if err != nil {
			return err
		}
		buf = payload
		if err := c.read(frameHeaderSize + len(payload)); err != nil {
			return err
		}
		if h.typ != EntryBatch {
			continue
		}
		bh, err := checkBatch(payload)
		if err != nil {
			return rs.corrupt(pos, "%v", err)
		}
		if bh.BaseOffset >= c.upTo {
			return c.flush()
		}
		if bh.NextOffset() <= from || bh.IsControl() || bh.IsTransactional() {
			continue
		}
		recs, err := record.Decode(payload, record.DecodeOptions{MaxDecompressed: c.opts.MaxDecompressed})
		if err != nil {
			return rs.corrupt(pos, "%v", err)
		}
		for _, r := range recs {
			if r.Key != nil && r.Offset >= from && r.Offset < c.upTo {
				c.keys[hashKey(r.Key)] = r.Offset
			}
		}
	}
}

// filter applies the rule to one batch, returning it unchanged (the same
// slice, changed=false) when it keeps every record.
func (c *cleaner) filter(b []byte, bh record.BatchHeader) (out []byte, changed bool, err error) {
	if bh.IsControl() || bh.IsTransactional() || bh.NextOffset() <= c.start || bh.BaseOffset >= c.upTo {
		return b, false, nil
	}
	tombstones, removed := 0, 0
	out, removed, err = record.Filter(b, record.DecodeOptions{MaxDecompressed: c.opts.MaxDecompressed}, func(r record.Record) bool {
		if r.Offset < c.start || r.Offset >= c.upTo || r.Key == nil {
			return true
		}
		superseded := false
		if latest, ok := c.keys[hashKey(r.Key)]; ok && latest > r.Offset {
			superseded = true
		}
		if superseded || r.Value == nil && bh.MaxTimestamp < c.horizon {
			if r.Value == nil {
				tombstones++
			}
			return false
		}
		return true
	})
	if err != nil {
		return nil, false, err
	}
	if removed > 0 {
		c.stats.RecordsRemoved += int64(removed)
		c.stats.TombstonesRemoved += int64(tombstones)
		if removed == int(bh.RecordCount) {
			c.stats.BatchesEmptied++
		}
	}
	return out, removed > 0, nil
}

// clean is pass 2 over the closed segment s: it filters every batch and,
// if one lost a record, writes the segment again and swaps it in. The new
// file is started lazily, at the first frame that changes, by copying the
// unchanged frames before it.
func (c *cleaner) clean(s segSnap, gen uint64) (err error) {
	rs, ok, err := c.open(s)
	if !ok {
		return err
	}
	defer rs.f.Close()
	c.stats.SegmentsCleaned++
	var sw *swapFiles
	var bw *bufio.Writer
	defer func() {
		if sw != nil {
			sw.abort()
		}
	}()
	write := func(b []byte) error {
		if _, err := bw.Write(b); err != nil {
			return err
		}
		c.stats.BytesWritten += int64(len(b))
		return c.throttle(len(b))
	}

	fr := rs.reader(fileHeaderSize, s.size)
	ix := newIndexer(c.l.opts.IndexIntervalBytes)
	outPos, next, wantIndex := int64(fileHeaderSize), rs.base, s.baseIndex
	var buf, frame []byte
	for {
		if err := c.check(); err != nil {
			return err
		}
		pos := fr.pos
		h, payload, err := fr.next(buf[:0])
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		buf = payload
		if err := c.read(frameHeaderSize + len(payload)); err != nil {
			return err
		}
		if cerr := rs.checkFrame(pos, h, payload, wantIndex, next, s.next); cerr != nil {
			return cerr
		}
		data, changed := payload, false
		var bh record.BatchHeader
		if h.typ == EntryBatch {
			bh, _ = record.ParseHeader(payload)
			if data, changed, err = c.filter(payload, bh); err != nil {
				return rs.corrupt(pos, "%v", err)
			}
		}
		if sw == nil && changed {
			if sw, err = createSwapFiles(rs.path); err != nil {
				return err
			}
			bw = bufio.NewWriterSize(sw.f, 256<<10)
			// Everything before this frame is unchanged: copy it.
			n, err := io.Copy(bw, io.NewSectionReader(rs.f, 0, pos))
			if err != nil {
				return err
			}
			c.stats.BytesWritten += n
			if err := c.read(int(n)); err != nil {
				return err
			}
			if err := c.throttle(int(n)); err != nil {
				return err
			}
			if err := c.l.hook("writing"); err != nil {
				return err
			}
		}
		frame = appendFrame(frame[:0], Entry{Index: h.index, Term: h.term, Type: h.typ, Data: data})
		if sw != nil {
			if err := write(frame); err != nil {
				return err
			}
		}
		ix.add(outPos, rs.rel(next), uint32(h.index-rs.baseIndex), int64(len(frame)), h.typ == EntryBatch, bh.MaxTimestamp)
		outPos += int64(len(frame))
		if h.typ == EntryBatch {
			next = bh.NextOffset()
		}
		wantIndex++
	}
	if next != s.next || wantIndex-1 != s.lastIndex {
		return rs.corrupt(fr.pos, "segment ends at offset %d, raft index %d; want %d, %d", next, wantIndex-1, s.next, s.lastIndex)
	}
	if err := c.flush(); err != nil {
		return err
	}
	if sw == nil {
		return nil // nothing removed: the segment stays as it is
	}
	ix.finish(rs.rel(s.next))
	if err := c.finishFiles(rs, sw, bw, &ix); err != nil {
		return err
	}
	ns := &segment{
		path: rs.path, name: rs.name, base: rs.base, baseIndex: rs.baseIndex, f: sw.f,
		created: s.s.created, size: outPos, next: s.next, lastIndex: s.lastIndex,
		maxTs: ix.maxTs, hasBatch: ix.hasBatch,
	}
	ns.idx.loaded, ns.idx.index, ns.idx.times = true, ix.index, ix.times
	owned := sw
	sw = nil // swapIn owns it now: it commits or aborts
	skipped, err := c.l.swapIn(s.s, ns, owned, gen)
	if err != nil || skipped {
		return err
	}
	c.stats.SegmentsRewritten++
	c.stats.BytesReclaimed += s.size - outPos
	return nil
}

// finishFiles makes the new segment durable under its temporary names
// (step 1 of the swap): the .log flushed, dated like the old one (segment
// age drives retention) and fsynced, the index files written and fsynced,
// then the directory fsynced.
func (c *cleaner) finishFiles(rs *segment, sw *swapFiles, bw *bufio.Writer, ix *indexer) error {
	if err := bw.Flush(); err != nil {
		return err
	}
	if fi, err := rs.f.Stat(); err == nil {
		if err := os.Chtimes(sw.path+logSuffix+cleanedSuffix, fi.ModTime(), fi.ModTime()); err != nil {
			return err
		}
	}
	if err := sw.f.Sync(); err != nil {
		return err
	}
	idx, times := encodeIndex(ix.index), encodeTimes(ix.times)
	if err := writeFile(sw.path+indexSuffix+cleanedSuffix, idx, true); err != nil {
		return err
	}
	if err := writeFile(sw.path+timeIndexSuffix+cleanedSuffix, times, true); err != nil {
		return err
	}
	c.stats.BytesWritten += int64(len(idx) + len(times))
	if err := syncDir(c.l.dir); err != nil {
		return err
	}
	return c.l.hook("written")
}
