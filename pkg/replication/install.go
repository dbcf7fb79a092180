package replication

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
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
//   - The staged copy then becomes the log (LogStore.Adopt): its segment
//     files are renamed into the partition directory, so the swap costs
//     renames and the scan of one segment, not a copy of the log. The
//     staging directory goes with it.
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
	err := g.copy.take(func(dir string) error { return g.store.Adopt(dir) })
	if err != nil {
		return fmt.Errorf("replication: snapshot install: %w", err)
	}
	g.logger.Info("replication: installed the leader's log",
		zap.Duration("swap_took", time.Since(started)),
		zap.Uint64("first_index", g.log.FirstIndex()), zap.Uint64("last_index", g.log.LastIndex()),
		zap.Int64("log_start", s.logStart), zap.Int64("high_watermark", s.hwm))
	return nil
}

// Adopt makes the log the staged copy in dir (a closed segment log inside
// the partition directory; see segment.Log.Adopt), after a snapshot
// install. Raft's idea of the log end is kept as a phantom, as Replace
// does. If Adopt fails the log is closed and the group must be reopened:
// the next Open finishes the adoption.
func (s *LogStore) Adopt(dir string) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if old := s.log.LastIndex(); old > s.phantom.Load() {
		s.phantom.Store(old)
	}
	s.cache.reset()
	if err := s.log.Adopt(dir); err != nil {
		return fmt.Errorf("replication: adopt the staged log copy: %w", err)
	}
	s.emptied = false
	s.refilled() // a replica abstaining after damage may now hold its range again
	return nil
}
