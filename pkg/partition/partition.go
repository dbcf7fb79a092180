package partition

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/metadata"
	"github.com/stratalog/strata/pkg/record"
	"github.com/stratalog/strata/pkg/replication"
	"github.com/stratalog/strata/pkg/segment"
)

// FsyncPolicy says when appended data reaches the disk.
type FsyncPolicy int

const (
	// FsyncAlways fsyncs every Raft append before the replica acknowledges
	// it: a batch is committed only once it is on disk on a majority.
	FsyncAlways FsyncPolicy = iota
	// FsyncInterval acknowledges once written to the OS and fsyncs every
	// Options.FsyncInterval: faster, but a power loss on a majority (not a
	// process crash) loses up to that interval of acknowledged records.
	FsyncInterval
)

// Acks says when Append returns.
type Acks int

const (
	AcksQuorum Acks = iota // committed by a majority (on disk with FsyncAlways); visible to consumers
	AcksNone               // validated and handed to the leader; the outcome is not reported
)

// Options configures one replica of a partition.
type Options struct {
	Dir    string
	Topic  string
	ID     int32
	Group  string // the partition's Raft group name (metadata.Topic.GroupName)
	Config metadata.TopicConfig

	NodeID    raft.ServerID
	Transport raft.Transport   // this group's own transport; closed with the partition
	Stable    raft.StableStore // this group's term and vote
	Bootstrap []raft.Server    // initial replicas, when this one is among them
	Raft      *raft.Config     // overrides replication.DefaultRaftConfig (tests shorten timeouts)
	// ReadLease: how long a majority's acknowledgement lets the leader
	// serve reads (replication.GroupConfig.ReadLease; 0 = its default).
	ReadLease time.Duration
	// SoleReplica: the partition has no other replica, so a log that lost
	// acknowledged records cannot fetch them back: Open then fails with
	// replication.ErrNoHealthyCopy (see replication.GroupConfig).
	SoleReplica bool

	// LogSource lets this replica fetch the leader's log when the leader
	// installs a snapshot (after retention deleted entries it needs).
	LogSource replication.LogSource

	Fsync         FsyncPolicy
	FsyncInterval time.Duration // for FsyncInterval; default 1s
	Clock         func() time.Time
	Logger        *zap.Logger
	Metrics       *Metrics // optional
}

// Result says where an Append's records landed.
type Result struct {
	Base, Last int64 // first and last offset written; -1 with AcksNone
	LogStart   int64
}

// Partition is one replica of a partition. Safe for concurrent use.
type Partition struct {
	opts  Options
	group *replication.Group
	log   *zap.Logger
	cfg   atomic.Pointer[metadata.TopicConfig]

	// Appends with AcksNone run on goroutines the partition owns, bounded
	// so that fire-and-forget producers cannot pile up without limit.
	background chan struct{}
	wg         sync.WaitGroup
	closeOnce  sync.Once
	closeErr   error
}

// maxBackground bounds AcksNone appends in flight per partition; beyond it
// an AcksNone append waits like an AcksQuorum one.
const maxBackground = 256

// Open opens (recovering if needed) the replica's log in opts.Dir and
// starts its Raft group.
func Open(opts Options) (*Partition, error) {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.FsyncInterval <= 0 {
		opts.FsyncInterval = time.Second
	}
	lg := opts.Logger.With(zap.String("topic", opts.Topic), zap.Int32("partition", opts.ID))
	so := segment.DefaultOptions()
	so.MaxSegmentBytes = opts.Config.SegmentBytes
	so.MaxSegmentAge = opts.Config.SegmentAge()
	so.Clock = opts.Clock
	so.Logger = lg
	g, err := replication.OpenGroup(replication.GroupConfig{
		Group:            opts.Group,
		NodeID:           opts.NodeID,
		Dir:              opts.Dir,
		SegmentOptions:   so,
		Transport:        opts.Transport,
		Stable:           opts.Stable,
		Bootstrap:        opts.Bootstrap,
		FsyncEveryAppend: opts.Fsync == FsyncAlways,
		FsyncInterval:    opts.FsyncInterval,
		Raft:             opts.Raft,
		LogSource:        opts.LogSource,
		SoleReplica:      opts.SoleReplica,
		ReadLease:        opts.ReadLease,
		Logger:           lg,
	})
	if err != nil {
		return nil, fmt.Errorf("partition %s/%d: %w", opts.Topic, opts.ID, err)
	}
	// What recovery cut is logged by segment (a torn tail at warn, damage
	// at error) and, for damage, by replication, which abstains.
	p := &Partition{opts: opts, group: g, log: lg, background: make(chan struct{}, maxBackground)}
	cfg := opts.Config
	p.cfg.Store(&cfg)
	return p, nil
}

// Topic names the partition's topic.
func (p *Partition) Topic() string { return p.opts.Topic }

// ID is the partition number.
func (p *Partition) ID() int32 { return p.opts.ID }

// GroupName is the partition's Raft group name.
func (p *Partition) GroupName() string { return p.opts.Group }

// AbstainUntil is the raft index this replica's log must reach again
// before it votes (it lost acknowledged records to damage and is fetching
// them back from the leader); 0 when healthy.
func (p *Partition) AbstainUntil() uint64 { return p.group.AbstainUntil() }

// Group is the partition's Raft group, for leadership and membership
// changes.
func (p *Partition) Group() *replication.Group { return p.group }

// SetConfig applies a changed topic config. Limits on new batches apply at
// once; segment size and age from the next append.
func (p *Partition) SetConfig(c metadata.TopicConfig) {
	p.cfg.Store(&c)
	if err := p.group.SetRollLimits(c.SegmentBytes, c.SegmentAge()); err != nil {
		p.log.Warn("segment roll limits not applied", zap.Error(err))
	}
}

// Append validates batches and commits them through the partition's Raft
// group. Every batch is checked (framing, CRC, records, max.message.bytes)
// before anything is submitted: one bad batch rejects the request and
// nothing of it is stored. Only the leader appends; elsewhere the error is
// NOT_LEADER with the leader's node id when known.
//
// An error that is a context error or UNAVAILABLE after submission leaves
// the outcome unknown: the batches may still commit.
func (p *Partition) Append(ctx context.Context, batches [][]byte, acks Acks) (Result, error) {
	if len(batches) == 0 {
		return Result{}, apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_REQUEST, "produce request for %s/%d holds no batch", p.opts.Topic, p.opts.ID)
	}
	cfg := p.cfg.Load()
	for i, b := range batches {
		if _, err := record.Validate(b, record.ValidateOptions{MaxBatchBytes: int(cfg.MaxMessageBytes)}); err != nil {
			return Result{}, fmt.Errorf("batch %d for %s/%d: %w", i, p.opts.Topic, p.opts.ID, err)
		}
		if cfg.Compacts() {
			if err := requireKeys(b); err != nil {
				return Result{}, fmt.Errorf("batch %d for %s/%d: %w", i, p.opts.Topic, p.opts.ID, err)
			}
		}
	}
	if !p.group.IsLeader() {
		return Result{}, p.notLeader()
	}
	if acks == AcksNone {
		select {
		case p.background <- struct{}{}:
			p.wg.Add(1)
			go func() {
				defer func() { <-p.background; p.wg.Done() }()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if _, _, err := p.group.Apply(ctx, batches); err != nil {
					p.log.Debug("acks=none append failed", zap.Error(err))
				}
			}()
			return Result{Base: -1, Last: -1, LogStart: p.LogStartOffset()}, nil
		default: // too many in flight: wait like acks=quorum
		}
	}
	start := time.Now()
	base, last, err := p.group.Apply(ctx, batches)
	if err != nil {
		return Result{}, p.appendError(err)
	}
	p.opts.Metrics.observeCommit(len(batches), time.Since(start))
	return Result{Base: base, Last: last, LogStart: p.LogStartOffset()}, nil
}

// requireKeys refuses a batch holding a record without a key: compaction
// keeps the latest record per key, so a keyless record has no place in a
// compacted topic (Kafka refuses it too).
func requireKeys(b []byte) error {
	recs, err := record.Decode(b, record.DecodeOptions{})
	if err != nil {
		return err
	}
	for i, r := range recs {
		if r.Key == nil {
			return apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_REQUEST,
				"record %d of the batch has no key: records in a compacted topic (cleanup.policy=compact) need a key; give one, or use a topic with cleanup.policy=delete", i)
		}
	}
	return nil
}

// Leader is the node id of the broker this replica's raft group follows
// as leader (itself when it leads), or 0 when it knows none.
func (p *Partition) Leader() uint32 {
	id, _ := p.group.Leader()
	var leader uint32
	fmt.Sscan(string(id), &leader)
	return leader
}

func (p *Partition) notLeader() error {
	return &apierr.Error{
		Code:     v1.ErrorCode_ERROR_CODE_NOT_LEADER,
		Message:  fmt.Sprintf("broker %s does not lead %s/%d", p.opts.NodeID, p.opts.Topic, p.opts.ID),
		LeaderID: p.Leader(),
	}
}

// appendError maps the replication layer's errors to API errors.
func (p *Partition) appendError(err error) error {
	var nl *replication.NotLeaderError
	switch {
	case errors.As(err, &nl):
		return p.notLeader()
	case errors.Is(err, replication.ErrIndeterminate):
		return apierr.New(v1.ErrorCode_ERROR_CODE_UNAVAILABLE,
			"leadership of %s/%d changed while appending: the records may or may not have been written; retry (duplicates are possible)", p.opts.Topic, p.opts.ID)
	case errors.Is(err, replication.ErrShutdown):
		return errClosed()
	case errors.Is(err, replication.ErrTransferInProgress):
		return apierr.New(v1.ErrorCode_ERROR_CODE_NOT_LEADER,
			"leadership of %s/%d is moving to another replica; retry there", p.opts.Topic, p.opts.ID)
	case errors.Is(err, replication.ErrOutOfOrderSequence):
		return apierr.New(v1.ErrorCode_ERROR_CODE_OUT_OF_ORDER_SEQUENCE, "%s/%d: %v", p.opts.Topic, p.opts.ID, err)
	case errors.Is(err, replication.ErrProducerFenced):
		return apierr.New(v1.ErrorCode_ERROR_CODE_PRODUCER_FENCED, "%s/%d: %v", p.opts.Topic, p.opts.ID, err)
	case errors.Is(err, replication.ErrUnknownProducer):
		return apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN_PRODUCER_ID, "%s/%d: %v", p.opts.Topic, p.opts.ID, err)
	}
	return err
}

func errClosed() error {
	return apierr.New(v1.ErrorCode_ERROR_CODE_UNAVAILABLE, "partition is closing")
}

// HighWatermark is the first offset consumers cannot see yet: everything
// below it is committed.
func (p *Partition) HighWatermark() int64 { return p.group.HighWatermark() }

// LogStartOffset is the first readable offset (retention and
// DeleteRecords move it, on every replica).
func (p *Partition) LogStartOffset() int64 { return p.group.LogStartOffset() }

// LogEndOffset is the offset the next record stored here gets.
func (p *Partition) LogEndOffset() int64 { return p.group.Log().NextOffset() }

// Size is the log's size on disk in bytes.
func (p *Partition) Size() int64 { return p.group.Log().Size() }

// Segments describes the log's segments.
func (p *Partition) Segments() []segment.SegmentInfo { return p.group.Log().Segments() }

// IsLeader reports whether this replica leads the partition.
func (p *Partition) IsLeader() bool { return p.group.IsLeader() }

// ReadLease returns nil while this replica may serve reads as the leader:
// raft calls it leader and a majority of the voters confirmed it within
// the read lease (replication.Group.ReadLease, which it may wait for, up
// to ctx). Reads from a leader without one may be stale. Errors are API
// errors (NOT_LEADER, UNAVAILABLE), or ctx's.
func (p *Partition) ReadLease(ctx context.Context) error {
	err := p.group.ReadLease(ctx)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, replication.ErrNoLease):
		return apierr.New(v1.ErrorCode_ERROR_CODE_NOT_LEADER,
			"broker %s led %s/%d but a majority of its replicas did not confirm it within its read lease: it may have been deposed or cut off; refresh metadata and retry",
			p.opts.NodeID, p.opts.Topic, p.opts.ID)
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return apierr.New(v1.ErrorCode_ERROR_CODE_NOT_LEADER,
			"broker %s leads %s/%d but could not confirm it with a majority of its replicas in time; retry", p.opts.NodeID, p.opts.Topic, p.opts.ID)
	}
	return p.appendError(err)
}

// RenewReadLease starts renewing the read lease if it is running out, and
// returns at once (replication.Group.RenewReadLease): call it on every
// partition of a request before ReadLease on each, so that their waits
// overlap.
func (p *Partition) RenewReadLease() { p.group.RenewReadLease() }

// Changed returns a channel closed the next time the high watermark moves.
// Long-polling fetches wait on it.
func (p *Partition) Changed() <-chan struct{} { return p.group.Changed() }

// Read returns whole batches from offset up to the high watermark, about
// maxBytes of them (at least one batch when any is available). The first
// batch may start before offset. An offset between the high watermark and
// the log end gives no data and no error; outside [log start, log end] it is
// an offset-out-of-range error carrying the valid range.
func (p *Partition) Read(offset int64, maxBytes int) ([]byte, error) {
	hwm := p.HighWatermark()
	start := p.LogStartOffset()
	if offset < start || offset > max(p.LogEndOffset(), hwm) {
		return nil, p.outOfRange(offset, start, hwm)
	}
	if offset >= hwm {
		return nil, nil
	}
	b, err := p.group.Log().Read(offset, hwm, maxBytes)
	if errors.Is(err, segment.ErrOffsetOutOfRange) {
		// Retention moved the start between our check and the read.
		return nil, p.outOfRange(offset, p.LogStartOffset(), hwm)
	}
	return b, err
}

func (p *Partition) outOfRange(offset, start, hwm int64) error {
	return &apierr.Error{
		Code:           v1.ErrorCode_ERROR_CODE_OFFSET_OUT_OF_RANGE,
		Message:        fmt.Sprintf("offset %d is outside %s/%d's log: valid offsets are %d to %d", offset, p.opts.Topic, p.opts.ID, start, hwm),
		LogStartOffset: start,
		HighWatermark:  hwm,
	}
}

// OffsetForTimestamp finds the first visible batch whose records reach ts
// (Unix ms); found is false if none does.
func (p *Partition) OffsetForTimestamp(ts int64) (int64, bool, error) {
	off, found, err := p.group.Log().OffsetForTimestamp(ts, p.HighWatermark())
	return max(off, p.LogStartOffset()), found, err
}

// Close waits for background appends, then stops the Raft group and closes
// the log (fsynced). The other replicas go on.
func (p *Partition) Close() error {
	p.closeOnce.Do(func() {
		p.wg.Wait()
		p.closeErr = p.group.Close()
	})
	return p.closeErr
}
