package replication

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"

	"github.com/stratalog/strata/pkg/segment"
)

// installMarker names the file that exists while a snapshot install
// replaces the log (LogStore.Replace): if it is there at start, the
// install was cut short and the log holds a part of the leader's copy.
const installMarker = "install.pending"

// prepareStart makes the log and the raft snapshots agree before raft
// starts, since raft refuses to start when no snapshot restores and
// panics when it must apply an entry the log lacks:
//
//  1. an install cut short (installMarker present): the partial copy and
//     every snapshot go; the replica starts empty and the leader installs
//     again, or replicates the log from index 1 if it still holds it;
//  2. a snapshot the log does not cover (its index beyond the log's last,
//     or its high watermark beyond the log end: an install that failed
//     after raft stored the snapshot, or a power loss under interval
//     fsync), one that fails its checksum or decoding, and one below the
//     log's first index minus one (raft would replay entries the log no
//     longer holds, and panic on the first: a corrupt newest snapshot next
//     to an older one used to crash-loop the broker) is deleted; raft then
//     restores the newest one left. If none is left but one failed only
//     its state check, it is rebuilt from the log (rebuildSnapshot);
//  3. if no snapshot is left but the log no longer starts at index 1
//     (retention deleted its start), raft would replay from index 1: the
//     log must go, and the leader installs a snapshot (or replicates the
//     log from index 1). The log held acknowledged entries, so the raft
//     index it reached is marked first (segment.Log.MarkDamaged) and the
//     replica abstains from votes until it has them again (abstain.go).
//     The group's only replica has no one to fetch them from: then
//     nothing is deleted and the start fails with ErrNoHealthyCopy.
//
// An emptied log continues at offset 0, not at its old start: raft starts
// with no snapshot and an empty log, so the next entry it stores is either
// index 1 (whose records have offset 0 on every replica) or the first of a
// copy, which Replace places itself. At the old start (the base of a
// partial copy, or retention's start) a log replayed from index 1 would
// give every record another offset than the leader's.
func prepareStart(dir string, l *segment.Log, snaps *raft.FileSnapshotStore, sole bool, logger *zap.Logger) error {
	snapDir := filepath.Join(dir, "snapshots")
	marker := filepath.Join(dir, installMarker)
	if _, err := os.Stat(marker); err == nil {
		logger.Warn("replication: a snapshot install was interrupted; discarding the partial log copy, the leader will install again")
		if err := l.Reset(0); err != nil {
			return err
		}
		// The snapshot store (opened before) needs its directory.
		if err := os.RemoveAll(snapDir); err != nil {
			return fmt.Errorf("replication: discard snapshots: %w", err)
		}
		if err := os.MkdirAll(snapDir, 0o755); err != nil {
			return fmt.Errorf("replication: discard snapshots: %w", err)
		}
		if err := os.Remove(marker); err != nil {
			return fmt.Errorf("replication: remove %s: %w", installMarker, err)
		}
		return nil
	}
	metas, err := snaps.List()
	if err != nil {
		return err
	}
	kept := 0
	var damaged *raft.SnapshotMeta // the newest whose state fails its check
	for _, m := range metas {
		ok, stateBad, why := snapshotCovered(snaps, m, l)
		if ok {
			kept++
			continue
		}
		if stateBad && damaged == nil {
			damaged = m
		}
		logger.Warn("replication: deleting a snapshot the log does not cover", zap.String("snapshot", m.ID), zap.String("why", why))
		if err := os.RemoveAll(filepath.Join(snapDir, m.ID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("replication: delete snapshot %s: %w", m.ID, err)
		}
	}
	if kept == 0 && damaged != nil && l.FirstIndex() > 1 {
		// Only a snapshot lets raft start on a log whose start is gone.
		if id, err := rebuildSnapshot(snaps, damaged, l); err != nil {
			logger.Warn("replication: cannot rebuild a damaged snapshot from the log", zap.String("snapshot", damaged.ID), zap.Error(err))
		} else {
			logger.Warn("replication: rebuilt a damaged snapshot from the log", zap.String("snapshot", damaged.ID), zap.String("rebuilt", id), zap.Uint64("index", damaged.Index))
			kept++
		}
	}
	if kept == 0 && l.FirstIndex() > 1 {
		if sole {
			logger.Error("replication: no snapshot covers the deleted start of the log and this is the only replica: not starting, nothing deleted",
				zap.Uint64("first_index", l.FirstIndex()), zap.Uint64("last_index", l.LastIndex()))
			return fmt.Errorf("no snapshot covers the log from raft index %d: %w", l.FirstIndex(), ErrNoHealthyCopy)
		}
		logger.Error("replication: no snapshot covers the deleted start of the log; discarding it, the leader will install a snapshot; this replica does not vote until it has fetched the log again",
			zap.Uint64("first_index", l.FirstIndex()), zap.Uint64("last_index", l.LastIndex()))
		var lastTerm uint64 // unknown if the entry cannot be read: votes for no one
		if e, err := l.ReadEntry(l.LastIndex()); err == nil {
			lastTerm = e.Term
		}
		if err := l.MarkDamaged(l.LastIndex(), lastTerm); err != nil {
			return err
		}
		return l.Reset(0)
	}
	return nil
}

// snapshotCovered reports whether m can start raft on l, and if not,
// whether only its state (not its place in the log) is wrong.
func snapshotCovered(snaps *raft.FileSnapshotStore, m *raft.SnapshotMeta, l *segment.Log) (ok, stateBad bool, why string) {
	if m.Index > l.LastIndex() {
		return false, false, fmt.Sprintf("snapshot index %d beyond the log's last index %d", m.Index, l.LastIndex())
	}
	if first := l.FirstIndex(); m.Index+1 < first {
		return false, false, fmt.Sprintf("snapshot index %d below the log's first index %d: the entries between are deleted", m.Index, first)
	}
	// raft stores an installed snapshot before Restore fetches the log, so
	// a failed or cut-short install leaves the leader's snapshot over this
	// replica's own log, which may differ from the leader's at that index.
	if m.Index >= l.FirstIndex() {
		e, err := l.ReadEntry(m.Index)
		if err != nil {
			return false, false, err.Error()
		}
		if e.Term != m.Term {
			return false, false, fmt.Sprintf("the log's entry %d has term %d, the snapshot's %d", m.Index, e.Term, m.Term)
		}
	}
	_, rc, err := snaps.Open(m.ID)
	if err != nil {
		return false, true, err.Error()
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, snapshotSizeV2+1))
	if err != nil {
		return false, true, err.Error()
	}
	s, err := decodeSnapshot(b)
	if err != nil {
		return false, true, err.Error()
	}
	if s.hwm > l.NextOffset() {
		return false, false, fmt.Sprintf("high watermark %d beyond the log end %d", s.hwm, l.NextOffset())
	}
	return true, false, ""
}
