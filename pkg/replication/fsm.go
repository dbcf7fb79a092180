package replication

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"

	"github.com/stratalog/strata/pkg/record"
	"github.com/stratalog/strata/pkg/segment"
)

// fsm is the partition's state machine. The log is the data, so the state
// is tiny: the high watermark, the offset after the last committed and
// applied batch. Applying a batch moves it to the batch's next offset,
// read from the stored batch header (its base offset was assigned when it
// was stored, identically on every replica), and wakes whoever waits on
// Changed. Snapshots hold the high watermark, never the log: they are
// cheap, so the Group takes them often, and a restart replays only the
// entries after the last one.
//
// raft calls ApplyBatch, Snapshot and Restore from its FSM goroutine, one
// at a time; highWatermark and changed are read from any goroutine.
type fsm struct {
	log    *segment.Log
	logger *zap.Logger

	hwm      atomic.Int64
	applied  atomic.Uint64 // index of the last entry given to ApplyBatch or restored
	started  atomic.Bool   // raft finished starting: a Restore now is an install
	installs atomic.Int64  // snapshot installs attempted (and refused)

	mu struct {
		sync.Mutex
		changed chan struct{} // closed when hwm moves, then replaced
	}
}

var _ raft.BatchingFSM = (*fsm)(nil)

// applyResult is the ApplyFuture response of a command: the offsets the
// batch got. err is set when the batch in the log is not a batch.
type applyResult struct {
	base, last int64
	err        error
}

func newFSM(l *segment.Log, logger *zap.Logger) *fsm {
	f := &fsm{log: l, logger: logger}
	f.mu.changed = make(chan struct{})
	return f
}

func (f *fsm) highWatermark() int64 { return f.hwm.Load() }

func (f *fsm) changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mu.changed
}

func (f *fsm) setHighWatermark(v int64) {
	if f.hwm.Swap(v) == v {
		return
	}
	f.mu.Lock()
	close(f.mu.changed)
	f.mu.changed = make(chan struct{})
	f.mu.Unlock()
}

// Apply applies one command; raft uses ApplyBatch instead.
func (f *fsm) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch advances the high watermark over the committed commands in
// logs and wakes waiters once. Configuration entries are skipped.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	hwm := f.hwm.Load()
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		h, err := record.ParseHeader(l.Data)
		if err != nil {
			// StoreLogs stored it as a batch, so it was framed then.
			f.logger.Error("replication: a committed command is not a record batch", zap.Uint64("index", l.Index), zap.Error(err))
			out[i] = applyResult{err: fmt.Errorf("replication: committed entry %d: %w", l.Index, err)}
			continue
		}
		if h.BaseOffset != hwm {
			// Offsets are assigned in log order, so a committed batch
			// starts where the previous one ended. Report, and follow the
			// log: it is what readers see.
			f.logger.Error("replication: committed batch does not start at the high watermark",
				zap.Uint64("index", l.Index), zap.Int64("base_offset", h.BaseOffset), zap.Int64("high_watermark", hwm))
		}
		out[i] = applyResult{base: h.BaseOffset, last: h.LastOffset()}
		hwm = h.NextOffset()
	}
	if n := len(logs); n > 0 {
		f.applied.Store(logs[n-1].Index)
	}
	f.setHighWatermark(hwm)
	return out
}

// Snapshot captures the high watermark. raft calls it on the FSM goroutine
// between applies, so the value matches the snapshot's index.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{hwm: f.hwm.Load(), applied: f.applied.Load()}, nil
}

// Restore sets the state from a snapshot. At start (raft restoring the
// latest local snapshot) it checks that the log holds everything the
// snapshot covers: a log that lost its tail (interval fsync and a power
// loss) fails it, and raft falls back to an older snapshot. After start a
// Restore is an install sent by the leader, which cannot work (the
// snapshot holds no data); it is refused with ErrSnapshotInstall.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if f.started.Load() {
		f.installs.Add(1)
		f.logger.Error("replication: refusing a snapshot install; this replica must be re-seeded", zap.Error(ErrSnapshotInstall))
		return ErrSnapshotInstall
	}
	b, err := io.ReadAll(io.LimitReader(rc, snapshotSize+1))
	if err != nil {
		return fmt.Errorf("replication: read snapshot: %w", err)
	}
	s, err := decodeSnapshot(b)
	if err != nil {
		return err
	}
	if next := f.log.NextOffset(); s.hwm > next {
		return fmt.Errorf("replication: snapshot high watermark %d is beyond the log end %d", s.hwm, next)
	}
	f.applied.Store(s.applied)
	f.setHighWatermark(s.hwm)
	return nil
}

// A snapshot is 28 bytes:
//
//	0      4   5       8               16              24      28
//	+------+---+-------+---------------+---------------+-------+
//	|"SRSN"| 1 | 0 0 0 | high watermark| applied index | crc32c|
//	| magic|ver| rsvd  | i64           | u64           | u32   |
//	+------+---+-------+---------------+---------------+-------+
//
// CRC-32C over bytes 0..24; big-endian. The applied index is the last
// command or configuration entry applied (raft's snapshot index may be a
// later no-op). These constants are part of the format.
const (
	snapshotMagic   = "SRSN"
	snapshotVersion = 1
	snapshotSize    = 28
)

type fsmSnapshot struct {
	hwm     int64
	applied uint64
}

func (s *fsmSnapshot) encode() []byte {
	b := append(make([]byte, 0, snapshotSize), snapshotMagic...)
	b = append(b, snapshotVersion, 0, 0, 0)
	b = binary.BigEndian.AppendUint64(b, uint64(s.hwm))
	b = binary.BigEndian.AppendUint64(b, s.applied)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var errBadSnapshot = errors.New("replication: corrupt snapshot")

func decodeSnapshot(b []byte) (fsmSnapshot, error) {
	switch {
	case len(b) != snapshotSize:
		return fsmSnapshot{}, fmt.Errorf("%w: %d bytes, want %d", errBadSnapshot, len(b), snapshotSize)
	case string(b[:4]) != snapshotMagic || b[4] != snapshotVersion:
		return fsmSnapshot{}, fmt.Errorf("%w: bad magic or version", errBadSnapshot)
	case crc32.Checksum(b[:24], castagnoli) != binary.BigEndian.Uint32(b[24:]):
		return fsmSnapshot{}, fmt.Errorf("%w: checksum mismatch", errBadSnapshot)
	}
	s := fsmSnapshot{hwm: int64(binary.BigEndian.Uint64(b[8:])), applied: binary.BigEndian.Uint64(b[16:])}
	if s.hwm < 0 {
		return fsmSnapshot{}, fmt.Errorf("%w: negative high watermark", errBadSnapshot)
	}
	return s, nil
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s.encode()); err != nil {
		sink.Cancel()
		return fmt.Errorf("replication: write snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}
