package client

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/stratalog/strata/pkg/apierr"
	"go.uber.org/zap"
)

// Commits. Every commit of a GroupConsumer, whichever method asked for
// it, is a snapshot of offsets taken under mu and numbered (mu.seq), and
// goes through commit, one at a time (commitMu). A partition's commit is
// sent only if no later snapshot of it has been committed already, so
// commits racing each other (an auto-commit and a CommitSync, a
// CommitAsync and a revoke) never move a committed offset backwards,
// while a Seek backwards followed by a commit still does. Only owned
// partitions are committed: a revoked one belongs to another member.

// CommitSync commits, and waits for, the positions after every record
// Poll has returned (with AutoCommitMarks: after the records marked).
func (gc *GroupConsumer) CommitSync(ctx context.Context) error {
	return gc.commitSnapshot(ctx, nil)
}

// CommitAsync commits like CommitSync in the background and calls cb
// (if not nil) with the offsets and the result, on a goroutine of the
// consumer; callbacks run in the order of the calls. Close waits for
// them.
func (gc *GroupConsumer) CommitAsync(cb func(offsets map[TopicPartition]int64, err error)) {
	gc.mu.Lock()
	if gc.mu.closed {
		gc.mu.Unlock()
		if cb != nil {
			cb(nil, ErrClosed)
		}
		return
	}
	seq, offs := gc.snapshotLocked(nil, gc.cfg.commit == commitMarked, false)
	prev, done := gc.mu.lastAsync, make(chan struct{})
	gc.mu.lastAsync = done
	gc.wg.Add(1) // under mu, before Close can wait
	gc.mu.Unlock()
	go func() {
		defer gc.wg.Done()
		defer close(done)
		<-prev
		err := gc.commit(gc.ctx, seq, offs)
		if cb != nil {
			cb(offs, err)
		}
	}()
}

// CommitRecords commits the positions after recs (per partition, after
// the highest offset given), for the partitions the member owns.
func (gc *GroupConsumer) CommitRecords(ctx context.Context, recs ...*Record) error {
	offs := make(map[TopicPartition]int64)
	for _, r := range recs {
		tp := TopicPartition{r.Topic, r.Partition}
		offs[tp] = max(offs[tp], r.Offset+1)
	}
	gc.mu.Lock()
	gc.mu.seq++
	seq := gc.mu.seq
	gc.mu.Unlock()
	return gc.commit(ctx, seq, offs)
}

// MarkRecords marks recs processed: with AutoCommitMarks, auto-commit
// commits up to the marks, and so do CommitSync and CommitAsync.
func (gc *GroupConsumer) MarkRecords(recs ...*Record) {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	for _, r := range recs {
		if st := gc.mu.parts[TopicPartition{r.Topic, r.Partition}]; st != nil {
			st.marked = max(st.marked, r.Offset+1)
		}
	}
}

// Committed returns the last offset the member knows committed for each
// owned partition (-1: none).
func (gc *GroupConsumer) Committed() map[TopicPartition]int64 {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	out := make(map[TopicPartition]int64, len(gc.mu.parts))
	for tp, st := range gc.mu.parts {
		out[tp] = st.committed
	}
	return out
}

// autoCommitLoop commits every AutoCommitInterval what the member has
// processed: the records returned before the last Poll, or the marks.
func (gc *GroupConsumer) autoCommitLoop() {
	t := time.NewTicker(gc.cfg.commitInterval)
	defer t.Stop()
	for {
		select {
		case <-gc.ctx.Done():
			return
		case <-t.C:
		}
		gc.mu.Lock()
		seq, offs := gc.snapshotLocked(nil, gc.cfg.commit == commitMarked, true)
		gc.mu.Unlock()
		if err := gc.commit(gc.ctx, seq, offs); err != nil && gc.ctx.Err() == nil {
			gc.c.log.Warn("auto-commit", zap.String("group", gc.group), zap.Error(err))
		}
	}
}

// commitSnapshot commits the positions of only (every owned partition
// when nil): after the records Poll returned, or the marks.
func (gc *GroupConsumer) commitSnapshot(ctx context.Context, only []TopicPartition) error {
	gc.mu.Lock()
	seq, offs := gc.snapshotLocked(only, gc.cfg.commit == commitMarked, false)
	gc.mu.Unlock()
	return gc.commit(ctx, seq, offs)
}

// snapshotLocked numbers a snapshot of the owned partitions' offsets to
// commit: the marks, or what the current Poll began at (processed), or
// everything returned (pos). Caller holds mu.
func (gc *GroupConsumer) snapshotLocked(only []TopicPartition, marked, processed bool) (uint64, map[TopicPartition]int64) {
	gc.mu.seq++
	offs := make(map[TopicPartition]int64)
	add := func(tp TopicPartition, st *partState) {
		switch {
		case marked && st.marked >= 0:
			offs[tp] = st.marked
		case marked:
		case processed:
			offs[tp] = st.processed
		default:
			offs[tp] = st.pos
		}
	}
	if only == nil {
		for tp, st := range gc.mu.parts {
			add(tp, st)
		}
	}
	for _, tp := range only {
		if st := gc.mu.parts[tp]; st != nil {
			add(tp, st)
		}
	}
	return gc.mu.seq, offs
}

// commit sends the snapshot seq of offsets, serialized with every other
// commit; see the comment at the top of the file. A commit fenced
// because the member's epoch moved on while it was built is sent again
// with the new epoch.
func (gc *GroupConsumer) commit(ctx context.Context, seq uint64, offs map[TopicPartition]int64) error {
	gc.commitMu.Lock()
	defer gc.commitMu.Unlock()
	offs = maps.Clone(offs) // the caller's (CommitAsync's callback) stays as it was
	for try := 0; ; try++ {
		gc.mu.Lock()
		send := make(map[TopicPartition]int64, len(offs))
		for tp, o := range offs {
			if st := gc.mu.parts[tp]; st != nil && st.seq <= seq && st.committed != o {
				send[tp] = o
			}
		}
		id, epoch, joined := gc.mu.m.id, gc.mu.m.epoch, gc.mu.m.joined() && !gc.mu.m.lost
		gc.mu.Unlock()
		if len(send) == 0 {
			return nil
		}
		if !joined {
			return fmt.Errorf("commit %v: %w", sortedTPs(send), ErrNotInGroup)
		}
		failed, err := gc.c.commitOffsets(ctx, gc.group, id, epoch, send)
		if err != nil {
			return err
		}
		gc.mu.Lock()
		stale := gc.mu.m.epoch != epoch
		var errs []error
		for tp, o := range send {
			if err := failed[tp]; err != nil {
				if !(stale && errors.Is(err, apierr.ErrFencedMemberEpoch)) || try >= 2 {
					errs = append(errs, err)
				}
				continue
			}
			delete(offs, tp)
			if st := gc.mu.parts[tp]; st != nil {
				st.committed, st.seq = o, seq
			}
		}
		gc.mu.Unlock()
		if len(errs) > 0 || len(failed) == 0 {
			return errors.Join(errs...)
		}
		// What is left was fenced by an epoch that has moved on: again.
	}
}
