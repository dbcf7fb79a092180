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

	"github.com/stratalog/strata/pkg/producers"
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
	store  *LogStore
	logger *zap.Logger
	// install fetches the log from the leader after a snapshot install
	// (nil: installs are refused with ErrSnapshotInstall).
	install func(s fsmSnapshot) error

	hwm      atomic.Int64
	logStart atomic.Int64 // the logical log start offset set by set-log-start commands
	compact  atomic.Pointer[CompactionTarget]
	// controlled is called (on the FSM goroutine) after a control command
	// was applied, so the owner can act on it (delete segments, compact).
	controlled func()
	applied    atomic.Uint64 // index of the last entry given to ApplyBatch or restored
	started    atomic.Bool   // raft finished starting: a Restore now is an install
	installs   atomic.Int64  // snapshot installs attempted

	mu struct {
		sync.Mutex
		changed chan struct{} // closed when hwm moves, then replaced
	}
	// prod: the producer state of the applied entries (producers.go).
	prod appliedProducers
}

var _ raft.BatchingFSM = (*fsm)(nil)

// applyResult is the ApplyFuture response of a command: the offsets the
// batch got. err is set when the batch in the log is not a batch.
type applyResult struct {
	base, last int64
	err        error
	// duplicate: a retried batch of an idempotent producer, not stored
	// again; base and last are the first copy's.
	duplicate bool
}

func newFSM(l *segment.Log, store *LogStore, logger *zap.Logger) *fsm {
	f := &fsm{log: l, store: store, logger: logger}
	f.mu.changed = make(chan struct{})
	f.prod.st = producers.New(producers.DefaultExpiry)
	if store != nil {
		store.applied = &f.prod
	}
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
	var batches []producers.Batch // the applied batches, for the producer state
	hwm := f.hwm.Load()
	controlled := false
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		if isControl(l.Data) {
			out[i] = f.applyControl(l, hwm)
			controlled = controlled || !isVerdict(l.Data)
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
		batches = append(batches, producerBatch(h))
	}
	if n := len(logs); n > 0 {
		f.prod.apply(batches, logs[n-1].Index)
		f.applied.Store(logs[n-1].Index)
	}
	f.setHighWatermark(hwm)
	if controlled && f.controlled != nil {
		f.controlled()
	}
	return out
}

// applyControl applies a control command (control.go). The log start never
// moves back nor past the high watermark; the data below it is deleted
// later, segment by segment, by the owner (Group.DeleteSegments).
func (f *fsm) applyControl(l *raft.Log, hwm int64) any {
	c, err := decodeControl(l.Data)
	if err != nil {
		f.logger.Error("replication: bad control command", zap.Uint64("index", l.Index), zap.Error(err))
		return applyResult{err: err}
	}
	switch c.kind {
	case controlSetLogStart:
		to := min(c.a, hwm)
		if to > f.logStart.Load() {
			f.logStart.Store(to)
		}
		return applyResult{base: f.logStart.Load(), last: -1}
	case controlProducerVerdict:
		return verdictResult(c)
	case controlCompact:
		t := &CompactionTarget{UpTo: min(c.a, hwm), NowMs: c.b, DeleteRetentionMs: c.c}
		if old := f.compact.Load(); old == nil || t.UpTo >= old.UpTo {
			f.compact.Store(t)
		}
		return applyResult{base: t.UpTo, last: -1}
	}
	return applyResult{}
}

// Snapshot captures the high watermark, log start and compaction target.
// raft calls it on the FSM goroutine between applies, so the values match
// the snapshot's index.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	s := &fsmSnapshot{hwm: f.hwm.Load(), applied: f.applied.Load(), logStart: f.logStart.Load()}
	if t := f.compact.Load(); t != nil {
		s.compact = *t
	}
	s.producers, _ = f.prod.snapshot()
	return s, nil
}

// Restore sets the state from a snapshot. At start (raft restoring the
// latest local snapshot) it checks that the log holds everything the
// snapshot covers: a log that lost its tail (interval fsync and a power
// loss) fails it, and raft falls back to an older snapshot.
//
// After start a Restore is an install sent by the leader because it no
// longer holds the entries this replica needs (retention deleted them).
// The snapshot holds no data, so install fetches the leader's log (from
// its first entry to its commit index, which covers the snapshot) and
// replaces this replica's log with it; see LogStore.Replace.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, snapshotMaxSize+1))
	if err != nil {
		return fmt.Errorf("replication: read snapshot: %w", err)
	}
	s, err := decodeSnapshot(b)
	if err != nil {
		return err
	}
	if f.started.Load() {
		f.installs.Add(1)
		if f.install == nil {
			f.logger.Error("replication: refusing a snapshot install; this replica must be re-seeded", zap.Error(ErrSnapshotInstall))
			return ErrSnapshotInstall
		}
		f.logger.Info("replication: installing a snapshot: fetching the leader's log",
			zap.Int64("high_watermark", s.hwm), zap.Int64("log_start", s.logStart))
		if err := f.install(s); err != nil {
			f.logger.Warn("replication: snapshot install failed; the leader will retry", zap.Error(err))
			return err
		}
	}
	if next := f.log.NextOffset(); s.hwm > next {
		return fmt.Errorf("replication: snapshot high watermark %d is beyond the log end %d", s.hwm, next)
	}
	if err := f.prod.restore(s.producers, s.applied); err != nil {
		return fmt.Errorf("replication: snapshot's producer state: %w", err)
	}
	f.applied.Store(s.applied)
	f.logStart.Store(max(s.logStart, f.log.StartOffset()))
	if s.compact.UpTo > 0 {
		t := s.compact
		f.compact.Store(&t)
	}
	f.setHighWatermark(s.hwm)
	if f.controlled != nil {
		f.controlled()
	}
	return nil
}

// A snapshot is 60 bytes (version 2; version 1 was 28, bytes 0..24 and its
// CRC, and is still read):
//
//	0      4   5       8               16              24
//	+------+---+-------+---------------+---------------+
//	|"SRSN"| 2 | 0 0 0 | high watermark| applied index |
//	| magic|ver| rsvd  | i64           | u64           |
//	+------+---+-------+---------------+---------------+
//	24              32              40              48              56      60
//	+---------------+---------------+---------------+---------------+-------+
//	| log start     | compact up to | compact now ms| tombstone     | crc32c|
//	| i64           | i64           | i64           | retention ms  | u32   |
//	+---------------+---------------+---------------+---------------+-------+
//
// CRC-32C over everything before it; big-endian. The applied index is the
// last command or configuration entry applied (raft's snapshot index may
// be a later no-op). The compaction fields are the latest compact command
// (all 0 if none).
//
// Version 3 is version 2's 60 bytes (with 3 in the version byte) followed
// by the producer state of the applied entries (producers.Encode, with its
// own length-free layout and CRC; docs/format/producer-state.md):
//
//	0           60                      60+n
//	+-----------+-----------------------+
//	| v2 layout | producer state, n ≥ 44|
//	+-----------+-----------------------+
//
// These constants are part of the format.
const (
	snapshotMagic   = "SRSN"
	snapshotVersion = 3
	snapshotSize    = 28 // version 1
	snapshotSizeV2  = 60 // versions 2 and 3 (without the producer state)
	// snapshotMaxSize bounds what Restore reads: a million producers.
	snapshotMaxSize = snapshotSizeV2 + 200<<20
)

type fsmSnapshot struct {
	hwm      int64
	applied  uint64
	logStart int64
	compact  CompactionTarget
	// producers: the encoded producer state (nil from versions 1 and 2).
	producers []byte
}

func (s *fsmSnapshot) encode() []byte {
	b := append(make([]byte, 0, snapshotSizeV2+len(s.producers)), snapshotMagic...)
	b = append(b, snapshotVersion, 0, 0, 0)
	b = binary.BigEndian.AppendUint64(b, uint64(s.hwm))
	b = binary.BigEndian.AppendUint64(b, s.applied)
	b = binary.BigEndian.AppendUint64(b, uint64(s.logStart))
	b = binary.BigEndian.AppendUint64(b, uint64(s.compact.UpTo))
	b = binary.BigEndian.AppendUint64(b, uint64(s.compact.NowMs))
	b = binary.BigEndian.AppendUint64(b, uint64(s.compact.DeleteRetentionMs))
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	return append(b, s.producers...)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var errBadSnapshot = errors.New("replication: corrupt snapshot")

func decodeSnapshot(b []byte) (fsmSnapshot, error) {
	size := 0
	var prod []byte
	if len(b) >= 5 && string(b[:4]) == snapshotMagic {
		switch b[4] {
		case 1:
			size = snapshotSize
		case 2:
			size = snapshotSizeV2
		case 3:
			size = snapshotSizeV2
			if len(b) > size {
				b, prod = b[:size], b[size:]
			}
		}
	}
	switch {
	case size == 0:
		return fsmSnapshot{}, fmt.Errorf("%w: bad magic or version", errBadSnapshot)
	case len(b) != size:
		return fsmSnapshot{}, fmt.Errorf("%w: %d bytes, want %d", errBadSnapshot, len(b), size)
	case crc32.Checksum(b[:size-4], castagnoli) != binary.BigEndian.Uint32(b[size-4:]):
		return fsmSnapshot{}, fmt.Errorf("%w: checksum mismatch", errBadSnapshot)
	}
	u := func(at int) int64 { return int64(binary.BigEndian.Uint64(b[at:])) }
	if prod != nil {
		if _, err := producers.Decode(prod, producers.DefaultExpiry); err != nil {
			return fsmSnapshot{}, fmt.Errorf("%w: %w", errBadSnapshot, err)
		}
	}
	s := fsmSnapshot{hwm: u(8), applied: uint64(u(16)), producers: prod}
	if size == snapshotSizeV2 {
		s.logStart = u(24)
		s.compact = CompactionTarget{UpTo: u(32), NowMs: u(40), DeleteRetentionMs: u(48)}
	}
	if s.hwm < 0 || s.logStart < 0 || s.logStart > s.hwm {
		return fsmSnapshot{}, fmt.Errorf("%w: high watermark %d, log start %d", errBadSnapshot, s.hwm, s.logStart)
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
