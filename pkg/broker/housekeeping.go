package broker

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/stratalog/strata/pkg/apierr"
)

// runHousekeeping applies retention and schedules compaction every
// --retention-check-interval: on each partition this broker leads it
// commits a new log start when the topic's limits call for one, and a new
// compaction target; on every replica it deletes the segments below the
// replicated log start. Compaction itself runs on the cleaner (cleaner.go).
func (b *Broker) runHousekeeping(ctx context.Context) {
	every(ctx, b.cfg.RetentionCheckInterval, func() {
		b.housekeepOnce(ctx)
		b.cleaner.wake()
	})
}

func (b *Broker) now() time.Time {
	if b.cfg.Clock != nil {
		return b.cfg.Clock()
	}
	return time.Now()
}

// agreedNow is the time the brokers' clocks agree on (cluster.AgreedNow):
// what retention and compaction lag are measured against, so that one
// broker whose clock runs ahead does not delete, as leader, what the
// topic's limits still keep.
func (b *Broker) agreedNow() time.Time {
	if b.members == nil {
		return b.now()
	}
	return b.members.AgreedNow()
}

// retentionNow is agreedNow when it is the median of a majority of the
// cluster's brokers' clocks, else ok is false: a leader that has not yet
// sampled the others' clocks (gossip probes one peer a second) would
// decide by its own alone, and one 48 h ahead deleted records written
// seconds before in the first seconds after its start.
func (b *Broker) retentionNow() (now time.Time, ok bool) {
	if b.members == nil {
		return b.now(), true
	}
	brokers := len(b.meta.Brokers())
	agreed, ok := b.members.AgreedNowOf(brokers)
	if !ok || brokers <= 1 {
		// Alone, this broker's clock is the only one: no stale
		// samples of others to be misled by.
		return agreed, ok
	}
	// Held back from jumping forward (retention_clock.go).
	return b.retentionClock.next(agreed, time.Now()), true
}

// housekeepOnce is one pass of runHousekeeping over every replica. The
// leader's decisions (retention, compaction) wait while retentionNow is
// not agreed; deleting below a log start already committed does not.
func (b *Broker) housekeepOnce(ctx context.Context) {
	now, agreed := b.retentionNow()
	if !agreed {
		b.log.Debug("retention and compaction wait: this broker has not sampled the clocks of a majority of the brokers yet")
	}
	for _, p := range b.replicas.all() {
		if ctx.Err() != nil {
			return
		}
		lg := b.log.With(zap.String("topic", p.Topic()), zap.Int32("partition", p.ID()))
		if agreed && p.IsLeader() {
			before := p.LogStartOffset()
			if after, err := p.EnforceRetention(ctx, now); err != nil {
				logHousekeeping(lg, "retention", err)
			} else if after > before {
				lg.Info("retention moved the log start", zap.Int64("from", before), zap.Int64("to", after))
			}
			if err := p.ScheduleCompaction(ctx, now); err != nil {
				logHousekeeping(lg, "schedule compaction", err)
			}
		}
		if n, err := p.DeleteSegments(ctx); err != nil {
			logHousekeeping(lg, "delete segments", err)
		} else if n > 0 {
			b.metrics.retentionDeleted.Add(float64(n))
			lg.Info("deleted segments below the log start", zap.Int64("bytes", n), zap.Int64("log_start", p.LogStartOffset()))
		}
	}
}

// logHousekeeping logs a failed step: leadership moving away mid-step is
// routine (the next leader takes over), anything else is a warning.
func logHousekeeping(lg *zap.Logger, what string, err error) {
	if errors.Is(err, context.Canceled) || apierr.Retriable(err) {
		lg.Debug(what+" deferred", zap.Error(err))
		return
	}
	lg.Warn(what+" failed", zap.Error(err))
}
