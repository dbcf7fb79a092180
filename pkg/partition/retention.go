package partition

import (
	"context"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/metadata"
	"github.com/stratalog/strata/pkg/segment"
)

// RetentionPoint is the log start offset that a topic's time and size
// limits call for, given the log's segments (oldest first; the last is the
// active one, never deleted), the current log start and the time now. It
// only ever deletes whole closed segments, oldest first, like Kafka:
//
//   - by time: a closed segment whose newest record is older than
//     retention.ms (a segment with no record batch counts as old);
//   - by size: while the segments from the next one on still hold at least
//     retention.bytes, the oldest goes.
//
// It returns start when nothing is due. It is a pure function of its
// arguments, so the clock is the caller's.
func RetentionPoint(segs []segment.SegmentInfo, start int64, now time.Time, cfg metadata.TopicConfig) int64 {
	if !cfg.Deletes() || len(segs) < 2 {
		return start
	}
	closed := segs[:len(segs)-1]
	// Skip segments already below the log start.
	i := 0
	for i < len(closed) && closed[i].NextOffset <= start {
		i++
	}
	var total int64
	for _, s := range segs[i:] {
		total += s.Size
	}
	point := start
	nowMs := now.UnixMilli()
	for ; i < len(closed); i++ {
		s := closed[i]
		byTime := cfg.RetentionMs >= 0 && s.MaxTimestamp < nowMs-cfg.RetentionMs
		bySize := cfg.RetentionBytes >= 0 && total-s.Size >= cfg.RetentionBytes
		if !byTime && !bySize {
			break
		}
		point = max(point, s.NextOffset)
		total -= s.Size
	}
	return point
}

// EnforceRetention moves the log start to the RetentionPoint, on every
// replica, when one is due. Only the leader acts; elsewhere it returns
// the current log start and no error.
func (p *Partition) EnforceRetention(ctx context.Context, now time.Time) (int64, error) {
	start := p.LogStartOffset()
	if !p.IsLeader() {
		return start, nil
	}
	point := RetentionPoint(p.Segments(), start, now, *p.cfg.Load())
	if point <= start {
		return start, nil
	}
	return p.setLogStart(ctx, point)
}

// DeleteRecords moves the log start to before (-1: the high watermark) on
// every replica, on purpose. Refused on immutable topics; before must not
// pass the high watermark. Only the leader can.
func (p *Partition) DeleteRecords(ctx context.Context, before int64) (int64, error) {
	if p.cfg.Load().Immutable {
		return 0, apierr.New(v1.ErrorCode_ERROR_CODE_POLICY_VIOLATION,
			"%s is immutable (event-store mode): its records can never be deleted", p.opts.Topic)
	}
	if !p.IsLeader() {
		return 0, p.notLeader()
	}
	hwm := p.HighWatermark()
	if before == -1 {
		before = hwm
	}
	start := p.LogStartOffset()
	if before < start {
		return start, nil // already deleted: nothing to do, as Kafka
	}
	if before > hwm {
		return 0, p.outOfRange(before, start, hwm)
	}
	return p.setLogStart(ctx, before)
}

func (p *Partition) setLogStart(ctx context.Context, offset int64) (int64, error) {
	start, err := p.group.SetLogStart(ctx, offset)
	if err != nil {
		return 0, p.appendError(err)
	}
	return start, nil
}

// DeleteSegments deletes this replica's segments wholly below the log
// start (any replica; see replication.Group.DeleteSegments) and returns
// how many bytes it freed.
func (p *Partition) DeleteSegments(ctx context.Context) (int64, error) {
	before := p.Size()
	if _, err := p.group.DeleteSegments(ctx); err != nil {
		return 0, err
	}
	return before - p.Size(), nil
}

// Housekeeping returns a channel that receives when the replicated log
// start or compaction target changed: time for DeleteSegments or Compact.
func (p *Partition) Housekeeping() <-chan struct{} { return p.group.ControlApplied() }

// ScheduleCompaction asks every replica to compact, when the topic is
// compacted and there is something new to compact: records below the
// active segment (on the leader), the high watermark, and the first record
// younger than min.compaction.lag.ms. Only the leader acts.
func (p *Partition) ScheduleCompaction(ctx context.Context, now time.Time) error {
	cfg := p.cfg.Load()
	if !cfg.Compacts() || !p.IsLeader() {
		return nil
	}
	segs := p.Segments()
	if len(segs) < 2 {
		return nil // only the active segment: nothing may be compacted
	}
	hwm := p.HighWatermark()
	upTo := min(segs[len(segs)-1].BaseOffset, hwm)
	if cfg.MinCompactionLagMs > 0 {
		off, found, err := p.group.Log().OffsetForTimestamp(now.UnixMilli()-cfg.MinCompactionLagMs, hwm)
		if err != nil {
			return err
		}
		if found {
			upTo = min(upTo, off)
		}
	}
	if upTo <= p.group.CompactionTarget().UpTo {
		return nil
	}
	if err := p.group.RequestCompaction(ctx, upTo, now, time.Duration(cfg.DeleteRetentionMs)*time.Millisecond); err != nil {
		return p.appendError(err)
	}
	return nil
}

// Compact runs the cleaner on this replica towards the replicated
// compaction target (see replication.Group.Compact); opts carries the
// throttle.
func (p *Partition) Compact(ctx context.Context, opts segment.CompactOptions) (segment.CompactStats, error) {
	return p.group.Compact(ctx, opts)
}

// CompactionTarget is the offset below which every replica was asked to
// compact (0: never).
func (p *Partition) CompactionTarget() int64 { return p.group.CompactionTarget().UpTo }

// DirtyRatio is the share of the closed segments' bytes the cleaner has
// not compacted yet (Kafka's cleanable dirty ratio); 0 with no closed
// segment.
func (p *Partition) DirtyRatio() float64 {
	dirty, total := p.group.Log().DirtyBytes()
	if total == 0 {
		return 0
	}
	return float64(dirty) / float64(total)
}
