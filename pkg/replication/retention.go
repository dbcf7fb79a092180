package replication

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
)

// Retention and compaction meet the raft log here. Both are decided once,
// by the leader, and replicated as control commands (control.go), so that
// every replica moves its log start to the same offset and compacts the
// same records:
//
//   - SetLogStart commits "the log starts at offset N". Applying it moves the
//     logical start at once (reads below it fail with offset-out-of-range on
//     every replica); DeleteSegments then deletes, on each replica, the
//     segments wholly below it, but only those a raft snapshot covers, since
//     raft replays the entries after its latest snapshot when it restarts.
//   - RequestCompaction commits "compact records below offset N, with the
//     leader's clock at T". Each replica's cleaner compacts its closed
//     segments towards that target (segment.Log.Compact), keeping every raft
//     entry (a batch that loses all its records stays, empty), so raft's
//     index and term look-ups never notice.
//
// A follower that needs entries the leader deleted gets a snapshot install,
// and fetches the leader's log through the LogSource (fsm.Restore).

// SetLogStart makes offset the first readable offset on every replica (it
// never moves back and stops at the high watermark) and returns the log
// start after the command applied. Only the leader can.
func (g *Group) SetLogStart(ctx context.Context, offset int64) (int64, error) {
	r, err := g.propose(ctx, control{kind: controlSetLogStart, a: offset})
	return r.base, err
}

// RequestCompaction asks every replica to compact records below upTo,
// expiring tombstones older than deleteRetention at the leader's time now.
// Only the leader can.
func (g *Group) RequestCompaction(ctx context.Context, upTo int64, now time.Time, deleteRetention time.Duration) error {
	_, err := g.propose(ctx, control{kind: controlCompact, a: upTo, b: now.UnixMilli(), c: deleteRetention.Milliseconds()})
	return err
}

func (g *Group) propose(ctx context.Context, c control) (applyResult, error) {
	if g.raft.State() != raft.Leader {
		// Cheap early answer; raft checks again when it takes the entry.
		return applyResult{}, g.convert(ctx, raft.ErrNotLeader, false)
	}
	var f raft.ApplyFuture
	if err := g.call(ctx, true, func(t time.Duration) raft.Future {
		f = g.raft.Apply(c.encode(), t)
		return f
	}); err != nil {
		return applyResult{}, err
	}
	r, _ := f.Response().(applyResult)
	return r, r.err
}

// LogStartOffset is the first readable offset: the replicated log start,
// or the first stored offset if that is later.
func (g *Group) LogStartOffset() int64 {
	return max(g.fsm.logStart.Load(), g.log.StartOffset())
}

// CompactionTarget is the latest compaction every replica was asked for
// (UpTo 0: none).
func (g *Group) CompactionTarget() CompactionTarget {
	if t := g.fsm.compact.Load(); t != nil {
		return *t
	}
	return CompactionTarget{}
}

// ControlApplied returns a channel that receives when a control command
// (or a snapshot carrying one) was applied: time to call DeleteSegments or
// to compact.
func (g *Group) ControlApplied() <-chan struct{} { return g.control }

func (g *Group) kickControl() {
	select {
	case g.control <- struct{}{}:
	default:
	}
}

// DeleteSegments deletes the segments wholly below the log start that a
// raft snapshot covers, taking a snapshot first if needed. It returns the
// first offset still stored. Any replica calls it, from one goroutine.
func (g *Group) DeleteSegments(ctx context.Context) (int64, error) {
	want := g.fsm.logStart.Load()
	segs := g.log.Segments()
	if len(segs) < 2 || segs[0].NextOffset > want {
		return g.log.StartOffset(), nil
	}
	idx, err := g.snapshotIndex()
	if err != nil {
		return g.log.StartOffset(), err
	}
	if idx < segs[0].LastIndex {
		if idx, err = g.snapshot(ctx); err != nil {
			return g.log.StartOffset(), err
		}
	}
	return g.store.TruncatePrefix(want, idx)
}

// snapshotIndex is the raft index of the latest snapshot (0 if none).
func (g *Group) snapshotIndex() (uint64, error) {
	v := g.raft.Stats()["last_snapshot_index"]
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("replication: last snapshot index %q: %w", v, err)
	}
	return n, nil
}

// snapshot takes a snapshot now and returns its index.
func (g *Group) snapshot(ctx context.Context) (uint64, error) {
	var fut raft.SnapshotFuture
	err := g.call(ctx, false, func(time.Duration) raft.Future {
		fut = g.raft.Snapshot()
		return fut
	})
	if errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return g.snapshotIndex()
	}
	if err != nil {
		return 0, err
	}
	meta, rc, err := fut.Open()
	if err != nil {
		return 0, err
	}
	rc.Close()
	return meta.Index, nil
}

// ServeLog reads this replica's log for another replica's copy (logcopy.go):
// fn gets the entries from index from (or the first stored one, if later)
// to the commit index, in chunks of about chunkBytes. The first chunk
// carries the log start, the log's size and, when the read starts at the
// first stored entry, that entry's base offset. Each chunk served tells
// the transport that an install's copy is progressing.
func (g *Group) ServeLog(ctx context.Context, from uint64, chunkBytes int, fn func(LogChunk) error) error {
	last := g.raft.CommitIndex()
	first := g.log.FirstIndex()
	if first == 0 || last < first {
		return errors.New("replication: no committed log to serve")
	}
	c := LogChunk{LogStart: g.LogStartOffset(), BaseOffset: -1, TotalBytes: g.log.Size()}
	if from <= first {
		from = first
		c.BaseOffset = g.log.Segments()[0].BaseOffset
	}
	noter, _ := g.cfg.Transport.(interface{ NoteCopyProgress() })
	size := 0
	if from > last {
		// Nothing committed after from yet: one empty chunk says so.
		return fn(c)
	}
	for i := from; i <= last; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		e, err := g.log.ReadEntry(i)
		if err != nil {
			return fmt.Errorf("replication: serve log entry %d: %w", i, err)
		}
		c.Entries = append(c.Entries, e)
		size += len(e.Data) + 32
		if size >= chunkBytes || i == last {
			if err := fn(c); err != nil {
				return err
			}
			for _, e := range c.Entries {
				g.served.Add(int64(len(e.Data)))
			}
			if noter != nil {
				noter.NoteCopyProgress()
			}
			c, size = LogChunk{}, 0
		}
	}
	return nil
}
