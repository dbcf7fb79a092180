package segment

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"
)

// Key compaction (Kafka's log cleaner), deterministic: what Compact removes
// depends only on the log's records and CompactOptions, never on the clock
// or on where segments begin, so that replicas compacting the same log with
// the same options hold the same records. Given UpTo (clamped to
// NextOffset), Now and DeleteRetention, a record at offset o, with key k,
// in a batch whose max timestamp is T, is removed iff
//
//	StartOffset <= o < UpTo, o is in a closed segment, k is not null,
//	its batch is neither a control nor a transactional batch, and either
//	- a record with key k has an offset in (o, UpTo) (it is superseded), or
//	- its value is null (a tombstone) and T < Now - DeleteRetention.
//
// Offsets never move: a batch keeps its offset range, an emptied batch
// stays as an empty batch (record.Filter), every frame keeps its raft
// index, term and type. A batch's max timestamp, not the records', dates a
// tombstone: it never changes under compaction, so neither does the
// decision.
//
// Rejected: Kafka's rule of keeping tombstones for delete.retention.ms
// after the segment was first cleaned (its last-modified time) depends on
// the wall clock and on when each replica cleaned, so replicas would
// disagree. Transactional batches are left alone: telling committed from
// aborted ones needs the transaction markers' state, which this package
// does not keep; keeping them only retains more.
//
// The run (one at a time; see Compact):
//
//	pass 1: read [max(StartOffset, CleanedUpTo), UpTo), active segment
//	        included, into a map  sha256(key)[:16] -> latest offset
//	pass 2: for each closed segment below UpTo, filter every batch through
//	        the rule; if a batch lost a record, write the segment again
//	        under a temporary name and swap it in (swap.go)
//
// CleanedUpTo is where the previous run's closed segments ended (min of its
// UpTo and its active segment's base offset): below it, no record is
// superseded by another below it, so a record there is superseded iff its
// key is in the map, and pass 1 need not read it again. Truncating the
// suffix lowers it to NextOffset. It is persisted in the cleaner-offset
// file after each complete run; a crash loses only that shortcut.
//
// The map holds 16 bytes of SHA-256 per key (as Kafka holds 16 bytes of
// MD5): memory grows with distinct keys, not key sizes, and a collision
// (which would drop a live record) needs about 2^64 keys.

// CompactOptions says what one Compact run may remove.
type CompactOptions struct {
	// UpTo: only records below it are considered (clamped to NextOffset).
	// The caller keeps it at or below the high watermark (a committed
	// record is never truncated away; an uncommitted one might be, and a
	// record it superseded would be lost) and applies the minimum
	// compaction lag by choosing it.
	UpTo int64
	// Now (unix ms) and DeleteRetention decide which tombstones expire:
	// those whose batch's max timestamp is below Now - DeleteRetention.
	// Pass the same values on every replica.
	Now             int64
	DeleteRetention time.Duration
	// Throttle, when not nil, is called before each chunk (at most
	// ThrottleChunk bytes) read or written, and may block; an error stops
	// the run. A golang.org/x/time/rate.Limiter with a burst of at least
	// ThrottleChunk fits: Throttle: lim.WaitN.
	Throttle func(ctx context.Context, n int) error
	// MaxDecompressed bounds a batch's records (0 =
	// record.DefaultMaxDecompressed); use the broker's limit.
	MaxDecompressed int
}

// ThrottleChunk is the most bytes one CompactOptions.Throttle call asks for.
const ThrottleChunk = 64 << 10

// CompactStats says what a Compact run did.
type CompactStats struct {
	UpTo              int64 // the UpTo used, clamped to NextOffset
	CleanedUpTo       int64 // after the run (see Log.CleanedUpTo)
	SegmentsCleaned   int   // closed segments filtered
	SegmentsRewritten int   // ... of which swapped for a smaller version
	BytesRead         int64 // frame bytes read, both passes
	BytesWritten      int64 // bytes of new .log and index files
	BytesReclaimed    int64 // .log bytes freed by the swaps
	RecordsRemoved    int64 // tombstones included
	TombstonesRemoved int64 // removed records with a null value
	BatchesEmptied    int64 // batches that lost their last record
}

// CleanedUpTo is the offset below which the closed segments hold no
// record superseded by another record below it (see Compact). The part of
// the log between it and the active segment is what compaction would gain
// on; DirtyBytes measures it.
func (l *Log) CleanedUpTo() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.mu.cleaned
}

// DirtyBytes returns the .log bytes of the closed segments holding offsets
// at or above CleanedUpTo (dirty) and of all closed segments (total):
// Kafka's cleanable dirty ratio is dirty/total. A caller compacts when it
// exceeds min.cleanable.dirty.ratio.
func (l *Log) DirtyBytes() (dirty, total int64) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	for _, s := range l.mu.segs {
		if s.active || s.next <= l.mu.start {
			continue
		}
		total += s.size
		if s.next > l.mu.cleaned {
			dirty += s.size
		}
	}
	return dirty, total
}

// Compact removes from the closed segments every record that the rule
// above removes, rewriting each affected segment under a temporary name
// and swapping it in (crash-safe: see swap.go and docs/format/segment.md).
// It never touches the active segment, and never rewrites a segment from
// which nothing is removed, so running it again with the same options
// changes nothing.
//
// Compact runs on its own goroutine, concurrently with the writer and the
// readers; runs are serialized. Readers see each segment whole, before or
// after its swap. A TruncateSuffix during the run stops it with
// ErrCompactAborted; a TruncatePrefix makes it skip the deleted segments;
// Close makes it return ErrClosed. Cancelling ctx stops it with ctx.Err().
// Either way the temporary files are removed and the segments swapped so
// far stay compacted.
func (l *Log) Compact(ctx context.Context, opts CompactOptions) (CompactStats, error) {
	l.cmu.Lock()
	defer l.cmu.Unlock()
	if opts.DeleteRetention < 0 {
		return CompactStats{}, fmt.Errorf("segment: compact: DeleteRetention %s is negative", opts.DeleteRetention)
	}
	l.mu.RLock()
	closed, start, next, cleaned, gen := l.mu.closed, l.mu.start, l.mu.next, l.mu.cleaned, l.mu.gen
	segs := make([]segSnap, len(l.mu.segs))
	for i, s := range l.mu.segs {
		segs[i] = segSnap{s: s, baseIndex: s.baseIndex, size: s.size, next: s.next, lastIndex: s.lastIndex, active: s.active}
	}
	l.mu.RUnlock()
	if closed {
		return CompactStats{}, ErrClosed
	}
	upTo := min(opts.UpTo, next)
	c := &cleaner{
		l: l, ctx: ctx, opts: opts, start: start, upTo: upTo,
		horizon: opts.Now - opts.DeleteRetention.Milliseconds(),
		keys:    make(map[keyHash]int64),
		stats:   CompactStats{UpTo: upTo, CleanedUpTo: cleaned},
	}
	if upTo <= start {
		return c.stats, nil
	}
	// The segments closed now are the ones this run may rewrite; where
	// they end is the new CleanedUpTo.
	closedEnd, nclosed := upTo, 0
	for _, s := range segs {
		if s.active {
			closedEnd = min(closedEnd, s.s.base)
			break
		}
		nclosed++
	}

	from := max(start, cleaned)
	for _, s := range segs {
		if from >= upTo || s.next <= from || s.s.base >= upTo || s.lastIndex < s.baseIndex {
			continue
		}
		if err := c.index(s, from); err != nil {
			return c.stats, c.stopped(err, gen)
		}
	}
	for _, s := range segs[:nclosed] {
		if s.next <= start || s.s.base >= upTo {
			continue
		}
		if err := c.clean(s, gen); err != nil {
			if c.deleted(s.s) && c.check() == nil {
				continue // a prefix truncation deleted its files under the run
			}
			return c.stats, c.stopped(err, gen)
		}
	}

	if closedEnd <= cleaned {
		if c.stats.SegmentsRewritten > 0 {
			c.report()
		}
		return c.stats, nil
	}
	l.swapMu.Lock()
	defer l.swapMu.Unlock()
	l.mu.RLock()
	closed, g := l.mu.closed, l.mu.gen
	l.mu.RUnlock()
	switch {
	case closed:
		return c.stats, ErrClosed
	case g != gen:
		return c.stats, ErrCompactAborted
	}
	if err := writeOffsetFile(l.dir, cleanerFileName, closedEnd); err != nil {
		return c.stats, err
	}
	l.mu.Lock()
	l.mu.cleaned = closedEnd
	l.mu.Unlock()
	c.stats.CleanedUpTo = closedEnd
	c.report()
	return c.stats, nil
}

// report logs a run that changed something.
func (c *cleaner) report() {
	c.l.logger.Info("segment: compacted", zap.Int64("up_to", c.stats.UpTo), zap.Int64("cleaned_up_to", c.stats.CleanedUpTo),
		zap.Int("segments_rewritten", c.stats.SegmentsRewritten), zap.Int64("records_removed", c.stats.RecordsRemoved),
		zap.Int64("bytes_reclaimed", c.stats.BytesReclaimed))
}

// stopped explains an error that stopped a run: reading a segment that a
// suffix truncation cut is its fault, not the data's.
func (c *cleaner) stopped(err error, gen uint64) error {
	c.l.mu.RLock()
	g := c.l.mu.gen
	c.l.mu.RUnlock()
	if g != gen {
		return ErrCompactAborted
	}
	return err
}

// segSnap is a segment's state when the run began: the active segment's
// fields change under the writer.
type segSnap struct {
	s          *segment
	baseIndex  uint64
	size, next int64
	lastIndex  uint64
	active     bool
}

// deleted reports that s is no longer in the log.
func (c *cleaner) deleted(s *segment) bool {
	c.l.mu.RLock()
	defer c.l.mu.RUnlock()
	return !slices.Contains(c.l.mu.segs, s)
}

// keyHash identifies a key in the cleaner's map.
type keyHash [16]byte

func hashKey(k []byte) keyHash {
	sum := sha256.Sum256(k)
	return keyHash(sum[:16])
}
