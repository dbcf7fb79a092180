package replication

import (
	"fmt"

	"github.com/hashicorp/raft"

	"github.com/stratalog/strata/pkg/record"
	"github.com/stratalog/strata/pkg/segment"
)

// rebuildSnapshotWalk bounds how many entries rebuildSnapshot reads back
// from the snapshot's index to find the last batch at or below it.
const rebuildSnapshotWalk = 4096

// rebuildSnapshot writes a new snapshot in place of m, whose state failed
// its check (a torn or bit-flipped state file), computing the state from
// the log, and returns its ID. It is what lets raft start on a log whose
// start retention deleted when no other snapshot is usable; without it the
// log would have to be discarded and fetched again (or, on a sole
// replica, the partition would wait for an operator).
//
// A snapshot's state is derived data (see fsmSnapshot): at raft index i
// the high watermark is the offset after the last batch at or below i (the
// FSM applied everything through i), and the log start is the log's own.
// The compaction target is left empty: the next one the leader sets
// replaces it, and until then nothing is compacted, which is safe. The
// raft metadata (index, term, configuration) comes from m, whose meta file
// read fine.
func rebuildSnapshot(snaps *raft.FileSnapshotStore, m *raft.SnapshotMeta, l *segment.Log) (string, error) {
	first, last := l.FirstIndex(), l.LastIndex()
	if first == 0 || m.Index > last || m.Index+1 < first {
		return "", fmt.Errorf("snapshot index %d outside the log's %d..%d", m.Index, first, last)
	}
	hwm := l.Segments()[0].BaseOffset // no batch at or below m.Index in the log
	for i, n := m.Index, 0; i >= first; i, n = i-1, n+1 {
		if n == rebuildSnapshotWalk {
			return "", fmt.Errorf("no batch within %d entries below raft index %d", rebuildSnapshotWalk, m.Index)
		}
		e, err := l.ReadEntry(i)
		if err != nil {
			return "", err
		}
		if e.Type == segment.EntryBatch {
			h, err := record.ParseHeader(e.Data)
			if err != nil {
				return "", fmt.Errorf("raft entry %d: %w", i, err)
			}
			hwm = h.NextOffset()
			break
		}
	}
	s := fsmSnapshot{hwm: hwm, applied: m.Index, logStart: min(l.StartOffset(), hwm)}
	sink, err := snaps.Create(raft.SnapshotVersionMax, m.Index, m.Term, m.Configuration, m.ConfigurationIndex, addrPeers{})
	if err != nil {
		return "", err
	}
	if err := s.Persist(sink); err != nil {
		return "", err
	}
	return sink.ID(), nil
}

// addrPeers encodes peers for a snapshot's legacy Peers field, as every
// transport here does: the address itself. The snapshot store needs only
// that of a transport.
type addrPeers struct{ raft.Transport }

func (addrPeers) EncodePeer(_ raft.ServerID, a raft.ServerAddress) []byte { return []byte(a) }
