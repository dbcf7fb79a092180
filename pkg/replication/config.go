package replication

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"

	"github.com/stratalog/strata/pkg/segment"
)

// GroupConfig configures one partition's Raft group on this broker.
type GroupConfig struct {
	// Group is the group's name, unique on this broker, e.g.
	// "<topicID>/<partition>". It prefixes the group's keys in the shared
	// stable store and names it in logs.
	Group  string
	NodeID raft.ServerID
	// Dir is the partition directory: segment files, and snapshots/.
	Dir            string
	SegmentOptions segment.Options
	// Transport carries this group's RPCs only (one per group: raft's
	// heartbeat fast path cannot tell groups apart). The caller owns it.
	Transport raft.Transport
	// Stable is the group's term and vote store, usually
	// StableStores.For(Group). The caller owns it.
	Stable raft.StableStore
	// Bootstrap: when non-empty and the group has no state yet, OpenGroup
	// bootstraps it with these voters. Every initial replica passes the
	// same list. Empty: the replica waits for a leader to add it.
	Bootstrap []raft.Server
	// FsyncEveryAppend: fsync at the end of every StoreLogs, before raft
	// acknowledges (the default policy). False: fsync every FsyncInterval
	// from a goroutine the group owns; a power loss on a majority can then
	// lose acknowledged entries.
	FsyncEveryAppend bool
	FsyncInterval    time.Duration
	// CacheEntries and CacheBytes bound the in-memory cache of the latest
	// entries (see recent); 0 and 0 = DefaultCacheEntries/Bytes, negative
	// entries = no cache.
	CacheEntries int
	CacheBytes   int
	// Raft overrides DefaultRaftConfig when set. LocalID, Logger and a
	// TrailingLogs of 0 are overwritten.
	Raft *raft.Config
	// LogSource copies the leader's log when the leader installs a
	// snapshot on this replica (it no longer holds the entries this replica
	// needs, because retention deleted them, or the replica is new); see
	// logcopy.go. nil: installs are refused with ErrSnapshotInstall.
	LogSource LogSource
	// SoleReplica: this is the group's only replica, so a log that lost
	// acknowledged entries cannot fetch them back: OpenGroup then fails
	// with ErrNoHealthyCopy instead of abstaining (abstain.go). A group
	// bootstrapped with this node alone counts as sole too.
	SoleReplica bool
	// CloseDrainTimeout bounds how long Close waits for Apply calls in
	// flight before shutting raft down (0 = 5s).
	CloseDrainTimeout time.Duration
	// ReadLease is how long evidence that a majority of the voters
	// acknowledged this leader lets it answer reads (Group.ReadLease,
	// lease.go): a deposed leader's reads are stale by at most about this
	// much. 0 = DefaultReadLease. The broker uses its heartbeat timeout.
	ReadLease time.Duration
	Logger    *zap.Logger // nil = no logging
}

// LogSource reads a group's log from another replica (the broker serves it
// over its internal API; see Group.ServeLog).
type LogSource interface {
	// ReadLog calls fn with peer's entries of group, in raft index order,
	// from index from (or its first stored entry, if later; from 0: its
	// first) to its commit index, in chunks. See Group.ServeLog.
	ReadLog(ctx context.Context, peer raft.ServerID, group string, from uint64, fn func(LogChunk) error) error
}

// LogChunk is a run of entries read from a replica's log. The first chunk
// of a read says where that log starts and how large it is.
type LogChunk struct {
	LogStart int64 // the replica's logical log start offset
	// BaseOffset is the offset of the first entry's first record when the
	// read starts at the replica's first stored entry; -1 otherwise.
	BaseOffset int64
	TotalBytes int64 // the replica's log size, for progress
	Entries    []segment.Entry
}

// Cache defaults: enough for a follower's FSM and the leader's replication
// to read the entries they just stored from memory, at a bounded cost per
// group.
const (
	DefaultCacheEntries = 256
	DefaultCacheBytes   = 1 << 20
)

// DefaultRaftConfig returns a fresh raft configuration tuned for many
// groups per broker (the broker then makes the timeouts and CommitTimeout
// twenty times its heartbeat timeout and decides elections itself:
// broker/failover.go):
//
//   - HeartbeatTimeout and ElectionTimeout 1s: raft's defaults. Raft
//     would heartbeat every 100-200ms; the broker's transport sends them
//     in rounds every third of the timeout (transport/beats.go).
//   - LeaderLeaseTimeout 1s (raft: 500ms): a leader that heard from no
//     quorum within it steps down. A round every 333ms gives three
//     chances per lease instead of 1.5; an isolated leader (which cannot
//     commit anyway) steps down 1-2s after it was cut off.
//   - CommitTimeout 2s (raft: 50ms): when no new entries come, the
//     leader sends an empty AppendEntries per follower every 2-4s, which
//     is also how a follower learns the last commit index. Under load
//     every append carries it, so only an idle follower's high watermark
//     lags, by up to that much. Consumers read from the leader, so the
//     idle cost wins: at 1,000 partitions RF=3 on one machine, 500ms cost
//     a broker 15.6% of a core at rest, 2s 14%; at raft's 50ms these
//     RPCs alone would cost more than every heartbeat.
//   - MaxAppendEntries 64 (raft's default): entries per StoreLogs and per
//     AppendEntries request, so up to 64 batches per fsync (group commit).
//     Raft reads a request's entries into memory before sending it, with
//     no bound on their bytes: 64 is what a follower catching up costs the
//     leader, per follower, besides the transport's window (64 MiB with
//     the default 1 MiB batches; 256 made it 256 MiB). The transport sends
//     a request in parts of at most 8 MiB (transport/split.go).
//   - BatchApplyCh: Apply queues without waiting for raft's main loop, so
//     the batches of one Apply stay contiguous and cheap to queue.
//   - SnapshotThreshold 512, SnapshotInterval 30s: snapshots are 28 bytes
//     and a restart replays the entries after the last one. Every group
//     checks once per interval (to twice): at 10s, 1,000 groups woke a
//     broker 70 times a second for it.
//   - TrailingLogs: irrelevant, prefix deletes are ignored (kept high so
//     raft rarely even asks).
//   - ShutdownOnRemove false: a removed replica is closed by its owner.
func DefaultRaftConfig() *raft.Config {
	c := raft.DefaultConfig()
	c.HeartbeatTimeout = time.Second
	c.ElectionTimeout = time.Second
	c.LeaderLeaseTimeout = time.Second
	c.CommitTimeout = 2 * time.Second
	c.MaxAppendEntries = 64
	c.BatchApplyCh = true
	c.SnapshotThreshold = 512
	c.SnapshotInterval = 30 * time.Second
	c.TrailingLogs = 1 << 20
	c.ShutdownOnRemove = false
	return c
}

func (c *GroupConfig) validate() error {
	var errs []error
	if c.Group == "" {
		errs = append(errs, errors.New("replication: GroupConfig.Group is empty"))
	}
	if c.NodeID == "" {
		errs = append(errs, errors.New("replication: GroupConfig.NodeID is empty"))
	}
	if c.Dir == "" {
		errs = append(errs, errors.New("replication: GroupConfig.Dir is empty"))
	}
	if c.Transport == nil {
		errs = append(errs, errors.New("replication: GroupConfig.Transport is nil"))
	}
	if c.Stable == nil {
		errs = append(errs, errors.New("replication: GroupConfig.Stable is nil"))
	}
	if !c.FsyncEveryAppend && c.FsyncInterval <= 0 {
		errs = append(errs, errors.New("replication: GroupConfig.FsyncInterval must be positive when FsyncEveryAppend is false"))
	}
	return errors.Join(errs...)
}
