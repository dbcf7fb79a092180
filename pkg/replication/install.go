package replication

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"

	"github.com/stratalog/strata/pkg/segment"
)

// installGate runs in the transport before raft sees an InstallSnapshot
// (transport.InstallGate): it returns once this replica's log, or its
// staged copy, holds the snapshot's last entry, copying the log from the
// leader that sent it if needed (logcopy.go). Raft goes on answering
// heartbeats, votes and appends meanwhile.
func (g *Group) installGate(ctx context.Context, req *raft.InstallSnapshotRequest) error {
	if covered(g.log, req.LastLogIndex, req.LastLogTerm) {
		return nil // the log holds it: the install restores offsets only
	}
	from := raft.ServerID(req.RPCHeader.ID)
	if err := g.copy.ensure(ctx, from, req.LastLogIndex, req.LastLogTerm); err != nil {
		return fmt.Errorf("copy the log for a snapshot install: %w", err)
	}
	return nil
}

// install makes this replica's log hold the log a snapshot install stands
// for; fsm.Restore calls it on raft's FSM goroutine, with raft's main loop
// waiting. Raft stored the snapshot before, so the latest snapshot in the
// store is the one being installed.
//
//   - If the log already holds the snapshot's last entry (the same index
//     and term), it is the leader's log up to there: nothing to do.
//   - Otherwise the staged copy must hold it: the transport's gate made it
//     before handing raft the install. Without a gate (another transport)
//     the copy is made here, on raft's main loop, resumable all the same.
//   - The staged copy then replaces the log (LogStore.Replace), a copy on
//     local disk, and the staging directory is deleted.
func (g *Group) install(s fsmSnapshot) error {
	index, term := s.applied, uint64(0)
	if metas, err := g.snaps.List(); err == nil && len(metas) > 0 {
		index, term = metas[0].Index, metas[0].Term
	}
	if covered(g.log, index, term) {
		g.logger.Info("replication: snapshot install: the log already holds the snapshot's last entry",
			zap.Uint64("index", index), zap.Uint64("term", term))
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // ends with install
		select {
		case <-g.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	_, id := g.raft.LeaderWithID()
	if err := g.copy.ensure(ctx, id, index, term); err != nil {
		return fmt.Errorf("replication: snapshot install: %w", err)
	}
	started := time.Now()
	var entries int
	err := g.copy.take(func(staged *segment.Log) error {
		return g.store.Replace(func(reset func(int64) error, add func([]segment.Entry) error) error {
			var err error
			entries, err = drainStaged(staged, reset, add)
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("replication: snapshot install: %w", err)
	}
	g.logger.Info("replication: installed the leader's log",
		zap.Int("entries", entries), zap.Duration("swap_took", time.Since(started)),
		zap.Uint64("first_index", g.log.FirstIndex()), zap.Uint64("last_index", g.log.LastIndex()),
		zap.Int64("log_start", s.logStart), zap.Int64("high_watermark", s.hwm))
	return nil
}

// swapChunkBytes sizes the appends of drainStaged.
const swapChunkBytes = 4 << 20

// drainStaged feeds the staged copy to LogStore.Replace's fill.
func drainStaged(staged *segment.Log, reset func(int64) error, add func([]segment.Entry) error) (int, error) {
	segs := staged.Segments()
	first, last := staged.FirstIndex(), staged.LastIndex()
	if len(segs) == 0 || first == 0 {
		return 0, fmt.Errorf("the staged log copy is empty")
	}
	if err := reset(segs[0].BaseOffset); err != nil {
		return 0, err
	}
	var batch []segment.Entry
	size := 0
	for i := first; i <= last; i++ {
		e, err := staged.ReadEntry(i)
		if err != nil {
			return 0, fmt.Errorf("read the staged log copy at %d: %w", i, err)
		}
		batch = append(batch, e)
		size += len(e.Data)
		if size >= swapChunkBytes || i == last {
			if err := add(batch); err != nil {
				return 0, err
			}
			batch, size = batch[:0], 0
		}
	}
	return int(last - first + 1), nil
}
