package broker

import (
	"context"
	"errors"
	"math"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/stratalog/strata/pkg/partition"
	"github.com/stratalog/strata/pkg/segment"
)

// The cleaner compacts this broker's replicas of compacted topics, one at
// a time, towards the compaction target their leader committed (see
// Partition.ScheduleCompaction). It runs after each housekeeping pass,
// shares one rate limit (--cleaner-bytes-per-second, read plus written)
// so that compaction cannot starve producers of disk bandwidth, and
// remembers per replica the target it last reached so that an unchanged
// target costs nothing.
type cleaner struct {
	b       *Broker
	limit   *rate.Limiter // nil = unlimited
	kick    chan struct{}
	reached map[string]int64 // group -> target reached (cleaner goroutine only)
}

func newCleaner(b *Broker) *cleaner {
	c := &cleaner{b: b, kick: make(chan struct{}, 1), reached: map[string]int64{}}
	if bps := b.cfg.CleanerBytesPerSecond; bps > 0 {
		c.limit = rate.NewLimiter(rate.Limit(bps), max(segment.ThrottleChunk, int(min(bps, math.MaxInt32))))
	}
	return c
}

// wake asks for a pass soon; it never blocks.
func (c *cleaner) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *cleaner) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
			c.pass(ctx)
		}
	}
}

// pass compacts every replica whose target moved since it was last reached.
func (c *cleaner) pass(ctx context.Context) {
	opts := segment.CompactOptions{}
	if c.limit != nil {
		opts.Throttle = c.limit.WaitN
	}
	seen := map[string]bool{}
	for _, p := range c.b.replicas.all() {
		group := p.GroupName()
		seen[group] = true
		target := p.CompactionTarget()
		if target <= 0 || target <= c.reached[group] {
			continue
		}
		if err := c.compact(ctx, p, opts); err != nil {
			if ctx.Err() != nil {
				return
			}
			c.b.log.Warn("compaction failed; retrying at the next pass", zap.String("topic", p.Topic()), zap.Int32("partition", p.ID()), zap.Error(err))
			continue
		}
		c.reached[group] = target
	}
	for g := range c.reached {
		if !seen[g] {
			delete(c.reached, g)
		}
	}
}

func (c *cleaner) compact(ctx context.Context, p *partition.Partition, opts segment.CompactOptions) error {
	m := c.b.metrics
	start := time.Now()
	st, err := p.Compact(ctx, opts)
	m.cleanerRead.Add(float64(st.BytesRead))
	m.cleanerWritten.Add(float64(st.BytesWritten))
	m.cleanerReclaimed.Add(float64(st.BytesReclaimed))
	m.cleanerRemoved.Add(float64(st.RecordsRemoved))
	if err != nil {
		if errors.Is(err, segment.ErrClosed) {
			return nil // the replica is closing or was removed
		}
		return err
	}
	m.cleanerRuns.Inc()
	m.cleanerLastRun.SetToCurrentTime()
	c.b.log.Info("compacted",
		zap.String("topic", p.Topic()), zap.Int32("partition", p.ID()), zap.Int64("up_to", st.UpTo),
		zap.Int("segments_rewritten", st.SegmentsRewritten), zap.Int64("bytes_reclaimed", st.BytesReclaimed),
		zap.Int64("records_removed", st.RecordsRemoved), zap.Int64("tombstones_removed", st.TombstonesRemoved),
		zap.Duration("took", time.Since(start)))
	return nil
}
