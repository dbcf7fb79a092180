package replication

import (
	"context"
	"time"

	"github.com/stratalog/strata/pkg/segment"
)

// Compact compacts this replica's closed segments towards the latest
// compaction target every replica was asked for (see RequestCompaction):
// records below the target's offset (and the high watermark), tombstones
// expiring by the leader's clock in the target, so that every replica
// removes the same records. opts supplies what the target does not say
// (throttling, limits). With no target it does nothing.
func (g *Group) Compact(ctx context.Context, opts segment.CompactOptions) (segment.CompactStats, error) {
	t := g.CompactionTarget()
	if t.UpTo <= 0 {
		return segment.CompactStats{}, nil
	}
	opts.UpTo = min(t.UpTo, g.HighWatermark())
	opts.Now = t.NowMs
	opts.DeleteRetention = time.Duration(t.DeleteRetentionMs) * time.Millisecond
	return g.log.Compact(ctx, opts)
}
