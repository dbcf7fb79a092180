package replication

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"

	"github.com/stratalog/strata/pkg/producers"
	"github.com/stratalog/strata/pkg/segment"
)

// LogStore is a partition's segment.Log seen as a raft.LogStore: the raft
// log and the partition log are the same bytes, written once.
//
// Mapping. A raft.Log of type LogCommand holds one record batch and is
// stored as a segment.EntryBatch: segment.Log.Append assigns its offsets
// from NextOffset and rewrites the batch's base offset in Data, in place.
// Every other type (no-op, configuration, barrier) is a segment.EntryRaft
// (layout in entry.go), which occupies no offsets and is never shown to
// consumers. Every replica stores the same raft log, so every replica
// assigns the same offsets. The in-place rewrite is harmless when raft
// keeps that *raft.Log in memory and sends it to followers: they rewrite
// it to the identical offset (a transport that shares memory between
// replicas, like raft.InmemTransport, makes that a data race in tests, not
// a wrong value; see copyingTransport in the tests).
//
// Durability. Each StoreLogs is raft's durability point (it acknowledges
// an append, or votes, only after it returns), so StoreLogs ends with one
// Log.Sync for all the entries raft gave it: raft hands over up to
// MaxAppendEntries entries per call, which is the group commit. With
// SyncEachStore off, a goroutine the Group owns calls Sync on an interval
// instead, and a power loss can lose acknowledged entries.
//
// Deletion. DeleteRange is raft's conflict resolution when it reaches the
// end of the log (TruncateSuffix) and raft's log compaction after a
// snapshot when it starts at the first index. Compaction is ignored: the
// log is the partition's data, and what is kept is retention's decision.
// A follower that falls behind is therefore always caught up from the
// leader's log, never by a snapshot (which holds no data).
//
// Concurrency. raft calls StoreLogs and DeleteRange from its main goroutine
// and, for compaction, DeleteRange from its snapshot goroutine; GetLog,
// FirstIndex and LastIndex from any goroutine (replication, FSM apply).
// segment.Log allows one writer and concurrent readers, so writes (and the
// interval Sync) are serialized by wmu and reads go straight to the log.
type LogStore struct {
	log      *segment.Log
	logger   *zap.Logger
	syncEach bool
	cache    *recent
	ahead    readAhead // GetLog's reads in order below the cache

	wmu sync.Mutex // serializes the log's writer calls

	// leading reports whether raft leads: StoreLogs checks what a
	// follower is sent (received.go). Raft calls StoreLogs as leader and
	// as follower from its main goroutine, which is also where its state
	// changes, so the answer holds for the call. Set once raft exists.
	leading atomic.Pointer[func() bool]

	// writeFailed: the last write of the log failed (storefail.go).
	writeFailed atomic.Bool

	// phantom: after a snapshot install replaced the log (see Replace),
	// raft may still believe the log reaches this index. GetLog answers
	// indexes between the real end and phantom with a term-0 no-op, so that
	// raft sees a conflict and deletes them, instead of failing to read
	// them forever. Cleared once raft deletes or overwrites them.
	phantom atomic.Uint64
	// emptied: a Replace failed after emptying the log, so the log holds
	// nothing of what raft believes it holds (see Replace). Guarded by wmu.
	emptied bool
	// marker is the file that exists while Replace runs (see prepareStart);
	// empty = none.
	marker string
	// abstainUntil: the log's damage mark (abstain.go), 0 = none.
	abstainUntil atomic.Uint64

	// prod: the producer state of every stored entry (producers.go), nil
	// when it must be rebuilt from applied (the FSM's copy). Guarded by
	// wmu.
	prod    *producers.State
	applied *appliedProducers
}

var (
	_ raft.LogStore          = (*LogStore)(nil)
	_ raft.MonotonicLogStore = (*LogStore)(nil)
)

// errLogEmptied: StoreLogs refuses entries that would start an emptied log
// anywhere but at index 1 (see Replace). Only raft sees it.
var errLogEmptied = errors.New("replication: the log was emptied by a failed snapshot install; it accepts entries from index 1 only")

// LogStoreOptions configures a LogStore.
type LogStoreOptions struct {
	// SyncEachStore: fsync at the end of every StoreLogs (the safe default
	// policy). Off, the caller syncs with Sync on an interval.
	SyncEachStore bool
	// CacheEntries and CacheBytes bound the cache of the most recently
	// stored entries (0 entries = no cache).
	CacheEntries int
	CacheBytes   int
	Logger       *zap.Logger // nil = no logging
}

// NewLogStore returns a LogStore over l. The LogStore becomes l's only
// writer; it does not close l.
func NewLogStore(l *segment.Log, opts LogStoreOptions) *LogStore {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	return &LogStore{log: l, logger: opts.Logger, syncEach: opts.SyncEachStore, cache: newRecent(opts.CacheEntries, opts.CacheBytes)}
}

// IsMonotonic is false although indexes have no gaps (segment.Log refuses
// them): a monotonic store makes raft delete the whole log after a
// snapshot install, and here the install has just replaced the log with
// the leader's copy (see fsm.Restore), which must stay.
func (s *LogStore) IsMonotonic() bool { return false }

// FirstIndex is the first stored raft index, 0 when empty.
func (s *LogStore) FirstIndex() (uint64, error) { return s.log.FirstIndex(), nil }

// LastIndex is the last stored raft index, 0 when empty.
func (s *LogStore) LastIndex() (uint64, error) { return s.log.LastIndex(), nil }

// GetLog reads the entry at index into out. A missing index returns
// raft.ErrLogNotFound, which makes a leader fall back to a snapshot. For a
// batch, out.Data is the record batch with its assigned base offset.
// out's slices must not be modified: they may be shared with the cache.
func (s *LogStore) GetLog(index uint64, out *raft.Log) error {
	if s.cache.get(index, out) {
		return nil
	}
	e, err := s.readEntry(index)
	if errors.Is(err, segment.ErrIndexNotFound) {
		if index <= s.phantom.Load() && index > s.log.LastIndex() {
			*out = raft.Log{Index: index, Term: 0, Type: raft.LogNoop}
			return nil
		}
		return raft.ErrLogNotFound
	}
	if err != nil {
		return err
	}
	*out = raft.Log{Index: e.Index, Term: e.Term}
	switch e.Type {
	case segment.EntryBatch:
		out.Type, out.Data = raft.LogCommand, e.Data
	case segment.EntryRaft:
		if err := decodeRaftEntry(e.Data, out); err != nil {
			return fmt.Errorf("replication: raft entry %d: %w: %w", index, segment.ErrCorrupt, err)
		}
	default:
		return fmt.Errorf("replication: raft entry %d: %w: entry type %s", index, segment.ErrCorrupt, e.Type)
	}
	return nil
}

// StoreLog stores one entry; see StoreLogs.
func (s *LogStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs appends logs, contiguous from LastIndex()+1, with one write
// and (with SyncEachStore) one fsync. A command's Data must be one framed
// record batch or a control command; a batch's base offset is rewritten in
// place.
//
// Entries the log already holds with the same term are skipped, and one
// held with another term cuts the log there: after a snapshot install
// raft's idea of the log end can trail the copy Replace fetched.
func (s *LogStore) StoreLogs(logs []*raft.Log) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.emptied && len(logs) > 0 && logs[0].Index != 1 {
		// raft still believes in the log a failed Replace deleted, and
		// accepts an append right after its in-memory last entry without
		// reading the store (its previous-entry check compares its cached
		// last term). The empty segment log would take any index as its
		// first: refuse, so that raft answers failure and the leader backs
		// off until it sends the log from index 1 (or installs again).
		return fmt.Errorf("replication: store raft entries from %d: %w", logs[0].Index, errLogEmptied)
	}
	logs, err := s.overlap(logs)
	if err != nil || len(logs) == 0 {
		return err
	}
	leader := true
	if leading := s.leading.Load(); leading != nil && !(*leading)() {
		leader = false
		if err := checkReceived(logs, s.log.NextOffset()); err != nil {
			s.logger.Error("refusing entries sent by the leader", zap.Error(err))
			return err
		}
	} else if leading == nil {
		leader = false // raft is not running yet (bootstrap, tests)
	}
	if err := s.decide(logs, leader); err != nil {
		return err
	}
	entries := make([]segment.Entry, len(logs))
	for i, l := range logs {
		e := segment.Entry{Index: l.Index, Term: l.Term}
		if l.Type == raft.LogCommand && !isControl(l.Data) {
			if len(l.Extensions) > 0 {
				return fmt.Errorf("replication: raft entry %d: command extensions are not stored", l.Index)
			}
			e.Type, e.Data = segment.EntryBatch, l.Data
		} else {
			e.Type, e.Data = segment.EntryRaft, encodeRaftEntry(l)
		}
		entries[i] = e
	}
	if _, err := s.log.Append(entries...); err != nil {
		s.writeFailed.Store(true)
		s.prod = nil // it counted entries the log may not hold
		return fmt.Errorf("replication: store raft entries %d..%d: %w", logs[0].Index, logs[len(logs)-1].Index, err)
	}
	if s.syncEach {
		if err := s.log.Sync(); err != nil {
			s.writeFailed.Store(true)
			s.prod = nil
			return fmt.Errorf("replication: store raft entries %d..%d: %w", logs[0].Index, logs[len(logs)-1].Index, err)
		}
	}
	s.writeFailed.Store(false)
	s.cache.add(logs)
	s.phantom.Store(0)
	s.emptied = false
	s.refilled()
	return nil
}

// overlap drops the leading entries the log already holds with the same
// term, and cuts the log before the first one it holds with another term.
// Caller holds wmu.
func (s *LogStore) overlap(logs []*raft.Log) ([]*raft.Log, error) {
	last := s.log.LastIndex()
	for len(logs) > 0 && logs[0].Index <= last {
		e, err := s.log.ReadEntry(logs[0].Index)
		if err != nil {
			return nil, fmt.Errorf("replication: store raft entry %d: %w", logs[0].Index, err)
		}
		if e.Term != logs[0].Term {
			s.prod = nil
			if err := s.log.TruncateSuffix(logs[0].Index - 1); err != nil {
				return nil, fmt.Errorf("replication: store raft entry %d: %w", logs[0].Index, err)
			}
			s.cache.truncateAfter(logs[0].Index - 1)
			break
		}
		logs = logs[1:]
	}
	return logs, nil
}

// Replace replaces the whole log with entries fetched from another replica
// after a snapshot install. fill calls reset once, with the offset of the
// first fetched entry (the log is emptied to continue there), then add for
// the entries in order; the log is fsynced at the end. Raft's idea of the
// log end is kept as a phantom (see LogStore.phantom).
//
// If fill fails, raft's Restore fails and raft keeps its in-memory idea of
// the log (last index and term), so the log must still fit it:
//
//   - before reset, nothing was replaced and the log stays as it is. It
//     used to be emptied: raft then accepted the next leader's append right
//     after its in-memory last entry (its previous-entry check does not read
//     the store), the empty segment log took it as a first entry, and the
//     replica acknowledged entries without the log below them, which the
//     leader never resent.
//   - after reset, the old log is gone and a part of the copy is no log
//     raft can use, so the log is emptied at offset 0 and marked emptied:
//     StoreLogs then accepts only index 1, where a leader replicating the
//     whole log starts (with the offsets every replica gives it), and the
//     phantom makes raft find its old entries in conflict. A new install
//     replaces the log again.
func (s *LogStore) Replace(fill func(reset func(base int64) error, add func([]segment.Entry) error) error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.prod = nil
	old := s.log.LastIndex()
	if s.marker != "" {
		if err := os.WriteFile(s.marker, nil, 0o644); err != nil {
			return fmt.Errorf("replication: replace log: %w", err)
		}
	}
	wasReset := false
	reset := func(base int64) error {
		if old > s.phantom.Load() {
			s.phantom.Store(old)
		}
		wasReset = true
		if err := s.log.Reset(base); err != nil {
			return err
		}
		s.cache.reset()
		return nil
	}
	add := func(es []segment.Entry) error {
		_, err := s.log.Append(es...)
		return err
	}
	if err := fill(reset, add); err != nil {
		if wasReset {
			if rerr := s.log.Reset(0); rerr != nil {
				// The marker stays: the next start discards the log.
				s.logger.Error("replication: cannot empty a partly copied log", zap.Error(rerr))
				return fmt.Errorf("replication: replace log: %w", err)
			}
			s.cache.reset()
			s.emptied = true
		}
		s.removeMarker()
		return fmt.Errorf("replication: replace log: %w", err)
	}
	if err := s.log.Sync(); err != nil {
		return fmt.Errorf("replication: replace log: %w", err)
	}
	s.emptied = false
	s.removeMarker()
	s.refilled()
	return nil
}

func (s *LogStore) removeMarker() {
	if s.marker == "" {
		return
	}
	if err := os.Remove(s.marker); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.logger.Warn("replication: cannot remove the install marker", zap.Error(err))
	}
}

// TruncatePrefix deletes the segments wholly below offset, never beyond
// raft index maxIndex (entries raft may still need to apply after a
// restart), and makes the log start there. Retention calls it.
func (s *LogStore) TruncatePrefix(offset int64, maxIndex uint64) (int64, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	cut := s.log.StartOffset()
	segs := s.log.Segments()
	for _, sg := range segs[:max(len(segs)-1, 0)] {
		if sg.NextOffset > offset || sg.LastIndex > maxIndex {
			break
		}
		cut = sg.NextOffset
	}
	if cut <= s.log.StartOffset() {
		return s.log.StartOffset(), nil
	}
	if err := s.log.TruncatePrefix(cut); err != nil {
		return s.log.StartOffset(), fmt.Errorf("replication: delete segments below %d: %w", cut, err)
	}
	s.cache.dropBefore(s.log.FirstIndex())
	return cut, nil
}

// DeleteRange deletes entries min..max (inclusive), as raft asks:
//
//   - a range reaching the last entry, above the first: raft's conflict
//     resolution on a follower. The log is truncated after min-1
//     (TruncateSuffix, fsynced); the next StoreLogs continues at min with
//     the offsets the truncated entries had.
//   - a range starting at the first entry and not reaching the last:
//     raft's compaction after a snapshot. Ignored (logged at debug):
//     deleting data is retention's job, and the leader must keep every
//     entry a lagging follower may need.
//   - the whole log: raft's compaction after installing a snapshot that
//     ends where the copy fetched by the install ends. Ignored too.
//   - beyond the end, up to the phantom index: see phantom.
//   - anything else (a hole in the middle) is an error.
func (s *LogStore) DeleteRange(min, max uint64) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	first, last := s.log.FirstIndex(), s.log.LastIndex()
	switch {
	case min > last && min <= s.phantom.Load():
		// raft deleting entries only it believed in (see phantom).
		s.phantom.Store(0)
		return nil
	case last == 0 || min > max || min > last:
		return nil
	case min > first && max >= last:
		s.prod = nil
		if err := s.log.TruncateSuffix(min - 1); err != nil {
			return fmt.Errorf("replication: delete raft entries %d..%d: %w", min, max, err)
		}
		s.cache.truncateAfter(min - 1)
		s.logger.Info("replication: truncated a conflicting log tail",
			zap.Uint64("from_index", min), zap.Uint64("to_index", last), zap.Int64("next_offset", s.log.NextOffset()))
		return nil
	case min <= first && max < last:
		s.logger.Debug("replication: ignoring raft log compaction; retention deletes data",
			zap.Uint64("from_index", min), zap.Uint64("to_index", max))
		return nil
	case min <= first:
		// raft compacting after a snapshot install whose index is the last
		// entry the copy holds: the copy is the data, keep it.
		s.logger.Debug("replication: ignoring raft's deletion of the whole log; retention deletes data",
			zap.Uint64("from_index", min), zap.Uint64("to_index", max))
		return nil
	}
	return fmt.Errorf("replication: cannot delete raft entries %d..%d from the middle of %d..%d", min, max, first, last)
}

// Sync fsyncs what StoreLogs wrote; the interval policy's goroutine calls
// it. It waits for a StoreLogs in progress.
func (s *LogStore) Sync() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.log.Sync()
}

// Log is the underlying segment log, for reads.
func (s *LogStore) Log() *segment.Log { return s.log }
