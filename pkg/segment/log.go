package segment

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// EntryType says what an Entry's Data holds. The values are stored in
// every frame and are part of the format.
type EntryType uint8

// The entry types.
const (
	// EntryBatch: Data is one Kafka v2 record batch (pkg/record); it
	// occupies LastOffsetDelta+1 offsets, which is its record count unless
	// key compaction removed records from it (see Compact).
	EntryBatch EntryType = 1
	// EntryRaft: Data is opaque raft-internal data (no-op, configuration);
	// it occupies no offsets and is never shown to consumers.
	EntryRaft EntryType = 2
)

func (t EntryType) String() string {
	switch t {
	case EntryBatch:
		return "batch"
	case EntryRaft:
		return "raft"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Entry is the unit of append: one raft log entry.
type Entry struct {
	Index uint64
	Term  uint64
	Type  EntryType
	Data  []byte
}

// Options configures a Log. Start from DefaultOptions.
type Options struct {
	// MaxSegmentBytes: roll when the active segment would exceed this. An
	// Append larger than this still goes whole into a fresh segment.
	MaxSegmentBytes int64
	// MaxSegmentAge: roll on the next Append once the active segment's
	// first append is older than this (0 = never), as told by Clock.
	MaxSegmentAge time.Duration
	// IndexIntervalBytes: one sparse index entry per this many log bytes.
	IndexIntervalBytes int
	Clock              func() time.Time // nil = time.Now
	Logger             *zap.Logger      // nil = zap.NewNop()
}

// DefaultOptions returns a fresh Options with the defaults: 1 GiB
// segments, no age limit, an index entry per 4 KiB.
func DefaultOptions() Options {
	return Options{MaxSegmentBytes: 1 << 30, IndexIntervalBytes: 4096}
}

func (o *Options) validate() error {
	if o.MaxSegmentBytes == 0 {
		o.MaxSegmentBytes = 1 << 30
	}
	if o.IndexIntervalBytes == 0 {
		o.IndexIntervalBytes = 4096
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	switch {
	case o.MaxSegmentBytes < fileHeaderSize || o.MaxSegmentBytes > maxSegmentBytes:
		return fmt.Errorf("segment: MaxSegmentBytes %d outside [%d, %d]", o.MaxSegmentBytes, fileHeaderSize, int64(maxSegmentBytes))
	case o.MaxSegmentAge < 0:
		return fmt.Errorf("segment: MaxSegmentAge %s is negative", o.MaxSegmentAge)
	case o.IndexIntervalBytes < 0:
		return fmt.Errorf("segment: IndexIntervalBytes %d is negative", o.IndexIntervalBytes)
	}
	return nil
}

// Log is a partition's log: a directory of segments. One goroutine writes
// (Append, Sync, Roll, TruncateSuffix, TruncatePrefix, Close); any number
// read concurrently (Read, ReadEntry, OffsetForTimestamp, Verify and the
// accessors).
type Log struct {
	dir    string
	opts   Options
	logger *zap.Logger
	report *CorruptionError
	damage *Damage // what Open cut below the tail (damage.go)

	// damagedThrough mirrors the damaged-index file (damage.go), and
	// damagedTerm the damaged-term file; damageMu keeps the pair
	// consistent for DamageMark.
	damagedThrough atomic.Uint64
	damageMu       sync.Mutex
	damagedTerm    uint64

	// Writer-only state.
	buf      []byte // frames of one Append
	dirDirty bool   // a file was created or removed since the last dir fsync

	// The cleaner's coordination (compact.go, swap.go). cmu makes Compact
	// runs one at a time. swapMu is held by each segment swap, and by
	// TruncateSuffix, TruncatePrefix and Close for their whole duration,
	// so that a swap never interleaves with them; it is taken before mu.
	cmu         sync.Mutex
	swapMu      sync.Mutex
	closing     atomic.Bool             // set first thing by Close: Compact stops
	compactHook func(step string) error // tests: called at each swap step

	mu struct {
		sync.RWMutex
		segs    []*segment // oldest first; the last may be active
		start   int64
		next    int64
		closed  bool
		cleaned int64  // CleanedUpTo, persisted in cleaner-offset
		gen     uint64 // bumped by TruncateSuffix: a running Compact aborts
		// rewrites counts the changes to entries already written
		// (truncation, reset, adoption, a compacted segment swapped in):
		// what ReadEntries returned stays the log's while it is unchanged.
		rewrites uint64
	}
}

// NextOffset is the log end offset: the offset the next record gets.
func (l *Log) NextOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.mu.next
}

// StartOffset is the first offset still readable.
func (l *Log) StartOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.mu.start
}

// FirstIndex is the first stored raft index, 0 when the log is empty.
func (l *Log) FirstIndex() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if !l.hasEntries() {
		return 0
	}
	return l.mu.segs[0].baseIndex
}

// LastIndex is the last stored raft index, 0 when the log is empty.
func (l *Log) LastIndex() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if !l.hasEntries() {
		return 0
	}
	return l.mu.segs[len(l.mu.segs)-1].lastIndex
}

// hasEntries: only the last segment can be empty. Caller holds mu.
func (l *Log) hasEntries() bool {
	n := len(l.mu.segs)
	return n > 1 || (n == 1 && l.mu.segs[0].frames() > 0)
}

// SegmentInfo describes one segment.
type SegmentInfo struct {
	BaseOffset, NextOffset int64
	BaseIndex, LastIndex   uint64 // LastIndex = BaseIndex-1 when empty
	Size                   int64  // bytes of the .log file
	MaxTimestamp           int64  // -1 when it holds no batch
	// Created is when the segment got its first append; for a segment
	// found on disk at Open, its file's modification time (which Compact
	// preserves).
	Created time.Time
	// Active: appends go here; Compact never rewrites it.
	Active bool
}

// Segments describes the segments, oldest first.
func (l *Log) Segments() []SegmentInfo {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]SegmentInfo, len(l.mu.segs))
	for i, s := range l.mu.segs {
		out[i] = SegmentInfo{
			BaseOffset: s.base, NextOffset: s.next, BaseIndex: s.baseIndex, LastIndex: s.lastIndex,
			Size: s.size, MaxTimestamp: s.maxTs, Created: s.created, Active: s.active,
		}
	}
	return out
}

// Size is the total size of the segments' .log files.
func (l *Log) Size() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var n int64
	for _, s := range l.mu.segs {
		n += s.size
	}
	return n
}

// RecoveryReport says what Open truncated from the tail of the log, or nil
// if the tail was clean: a torn tail, or (see Damage) the first bad frame
// of damage below it.
func (l *Log) RecoveryReport() *CorruptionError { return l.report }

// Close fsyncs the active segment and closes every file. Later calls
// return ErrClosed.
func (l *Log) Close() error {
	l.closing.Store(true)
	l.swapMu.Lock()
	defer l.swapMu.Unlock()
	err := l.Sync()
	if err == ErrClosed {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.mu.closed = true
	for _, s := range l.mu.segs {
		if cerr := s.f.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// SetRollLimits changes when the active segment rolls (see
// Options.MaxSegmentBytes and MaxSegmentAge), from the next Append on. Like
// Append, it is called from the writer goroutine.
func (l *Log) SetRollLimits(maxBytes int64, maxAge time.Duration) error {
	o := l.opts
	o.MaxSegmentBytes, o.MaxSegmentAge = maxBytes, maxAge
	if err := o.validate(); err != nil {
		return err
	}
	// Only the two fields the writer reads change: readers and the cleaner
	// read other fields of opts concurrently.
	l.opts.MaxSegmentBytes, l.opts.MaxSegmentAge = o.MaxSegmentBytes, o.MaxSegmentAge
	return nil
}
