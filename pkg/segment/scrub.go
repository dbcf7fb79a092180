package segment

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Scrubbing. Recovery reads only the active segment, and a read meets
// damage in a closed segment only when a consumer or a lagging follower
// asks for it, maybe long after the last healthy copy elsewhere is gone.
// Scrub re-reads closed segments in the background, frame by frame, at a
// rate the caller bounds, so that damage is found while it can still be
// repaired from another replica.

// ScrubOptions configures one Scrub run.
type ScrubOptions struct {
	// Throttle is called with the bytes read, in ThrottleChunk pieces
	// (e.g. rate.Limiter.WaitN); nil = as fast as the disk goes.
	Throttle func(ctx context.Context, n int) error
}

// ScrubResult is what one Scrub run read and found.
type ScrubResult struct {
	Segments int   // closed segments read to their end
	Bytes    int64 // bytes read
	// Damage lists one *CorruptionError per damaged segment: its first
	// bad frame (or a segment that does not end where the next begins).
	Damage []*CorruptionError
}

// scrubTarget is what Scrub needs of a closed segment, copied under the
// log's read lock.
type scrubTarget struct {
	path, name      string
	base, next      int64
	baseIndex, last uint64
	size            int64
}

// Scrub re-reads every closed segment frame by frame, as Verify does
// (length, CRC, type, contiguous raft indexes and offsets, the segment
// ending where the next begins), through its own file descriptors and
// without holding the log's lock during reads, so the writer never waits
// for it. A segment deleted (retention) or replaced (compaction) meanwhile
// is read as it was or skipped. It returns what it found; an error means
// it stopped early (ctx, Throttle, the log closing, or an I/O error).
func (l *Log) Scrub(ctx context.Context, opts ScrubOptions) (ScrubResult, error) {
	var res ScrubResult
	l.mu.RLock()
	if l.mu.closed {
		l.mu.RUnlock()
		return res, ErrClosed
	}
	var targets []scrubTarget
	gen := l.mu.gen // moved by TruncateSuffix and Adopt: the list is then stale
	for _, s := range l.mu.segs {
		if !s.active {
			targets = append(targets, scrubTarget{path: s.path, name: s.name, base: s.base, next: s.next, baseIndex: s.baseIndex, last: s.lastIndex, size: s.size})
		}
	}
	l.mu.RUnlock()
	pending := 0
	throttle := func(n int) error {
		if opts.Throttle == nil {
			return nil
		}
		for pending += n; pending >= ThrottleChunk; pending -= ThrottleChunk {
			if err := opts.Throttle(ctx, ThrottleChunk); err != nil {
				return err
			}
		}
		return nil
	}
	for _, t := range targets {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if l.closing.Load() {
			return res, ErrClosed
		}
		n, cerr, err := scrubOne(t, throttle)
		res.Bytes += n
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since the list was taken
		}
		if err != nil {
			return res, err
		}
		res.Segments++
		if cerr != nil {
			l.mu.RLock()
			stale := l.mu.gen != gen
			l.mu.RUnlock()
			if stale {
				// The file under this name may be another log's now (an
				// adopted copy, a truncated tail): not damage.
				continue
			}
			res.Damage = append(res.Damage, cerr)
		}
	}
	if opts.Throttle != nil && pending > 0 {
		if err := opts.Throttle(ctx, pending); err != nil {
			return res, err
		}
	}
	return res, nil
}

// scrubOne reads one closed segment through a descriptor of its own.
func scrubOne(t scrubTarget, throttle func(int) error) (int64, *CorruptionError, error) {
	f, err := os.Open(t.path + logSuffix)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	s := &segment{path: t.path, name: t.name, base: t.base, baseIndex: t.baseIndex, f: f, size: t.size}
	var hdr [fileHeaderSize]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		return 0, nil, fmt.Errorf("segment: scrub %s: %w", t.name, err)
	}
	if base, baseIndex, err := parseFileHeader(hdr[:]); err != nil || base != t.base || baseIndex != t.baseIndex {
		if err == nil {
			err = fmt.Errorf("file header says base offset %d, raft index %d; want %d, %d", base, baseIndex, t.base, t.baseIndex)
		}
		return fileHeaderSize, s.corrupt(0, "%v", err), nil
	}
	if err := throttle(fileHeaderSize); err != nil {
		return fileHeaderSize, nil, err
	}
	fr := s.reader(fileHeaderSize, t.size)
	pos, next, want := int64(fileHeaderSize), t.base, t.baseIndex
	var buf []byte
	read := int64(fileHeaderSize)
	for {
		h, payload, err := fr.next(buf[:0])
		buf = payload
		if err == io.EOF {
			break
		}
		var cerr *CorruptionError
		if errors.As(err, &cerr) {
			return read, cerr, nil
		}
		if err != nil {
			return read, nil, fmt.Errorf("segment: scrub %s: %w", t.name, err)
		}
		n := frameHeaderSize + int(h.length)
		read += int64(n)
		if err := throttle(n); err != nil {
			return read, nil, err
		}
		if cerr := s.checkFrame(pos, h, payload, want, next, t.next); cerr != nil {
			return read, cerr, nil
		}
		if h.typ == EntryBatch {
			if bh, err := checkBatch(payload); err == nil {
				next = bh.NextOffset()
			}
		}
		pos, want = fr.pos, h.index+1
	}
	if next != t.next || want != t.last+1 {
		return read, s.corrupt(pos, "segment ends at offset %d, raft index %d; want %d, %d", next, want-1, t.next, t.last), nil
	}
	return read, nil, nil
}
