package replication

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"

	"github.com/stratalog/strata/pkg/record"
	"github.com/stratalog/strata/pkg/segment"
)

// Group is one partition replica's membership in the partition's Raft
// group: its segment log (which is the raft log), its FSM (the high
// watermark) and the raft node. Methods are safe for concurrent use.
type Group struct {
	cfg    GroupConfig
	logger *zap.Logger
	raft   *raft.Raft
	store  *LogStore
	fsm    *fsm
	log    *segment.Log
	snaps  *raft.FileSnapshotStore
	// copy stages the leader's log for a snapshot install (logcopy.go);
	// nil without a LogSource.
	copy *logCopy
	// served counts entry bytes ServeLog gave other replicas' copies.
	served atomic.Int64

	// bootstrapped: OpenGroup found no state and bootstrapped the group.
	bootstrapped bool
	// abstainer filters votes while the log is short of its damage mark
	// (abstain.go); nil when the group started undamaged.
	abstainer *abstainTransport

	// applyMu keeps the batches of one Apply consecutive in raft's apply
	// queue, so they get consecutive offsets. Queueing is a channel send
	// into raft's buffered apply channel, so it is held briefly.
	applyMu sync.Mutex

	mu struct {
		sync.Mutex
		closing  bool
		inflight int           // calls waiting on raft futures
		drained  chan struct{} // closed when closing and inflight reaches 0
		onLeader []func(isLeader bool)
	}
	// nudging: a catch-up barrier is being appended (catchup.go).
	nudging atomic.Bool
	// handedTo: the last completed HandOver's target (handover.go).
	handedTo atomic.Pointer[HandedTo]
	// opened: when New returned (Successor.Opened).
	opened time.Time
	// readyTerm is the term in which this replica, as leader, has applied
	// everything committed before it (see awaitLeaderReady).
	readyTerm atomic.Uint64
	// lease is the leader's read lease (lease.go).
	lease lease

	done    chan struct{}  // closed once raft is shut down
	stop    chan struct{}  // closed when Close starts: cancels a snapshot install's fetch
	control chan struct{}  // a control command was applied (buffered, 1)
	wg      sync.WaitGroup // the leader watcher and the fsync ticker
}

// OpenGroup opens (or creates) the partition log in cfg.Dir, bootstraps
// the group if asked and new, and starts the raft node. Close it.
func OpenGroup(cfg GroupConfig) (*Group, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = zap.NewNop()
	}
	logger = logger.With(zap.String("group", cfg.Group), zap.String("raft_id", string(cfg.NodeID))) // not "node": the broker's logger names its node already
	segOpts := cfg.SegmentOptions
	if segOpts.Logger == nil {
		segOpts.Logger = logger
	}
	l, err := segment.Open(cfg.Dir, segOpts)
	if err != nil {
		return nil, fmt.Errorf("replication: open group %s: %w", cfg.Group, err)
	}
	g, err := start(cfg, l, logger)
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("replication: open group %s: %w", cfg.Group, err)
	}
	return g, nil
}

func start(cfg GroupConfig, l *segment.Log, logger *zap.Logger) (*Group, error) {
	if cfg.CacheEntries == 0 && cfg.CacheBytes == 0 {
		cfg.CacheEntries, cfg.CacheBytes = DefaultCacheEntries, DefaultCacheBytes
	}
	if cfg.CloseDrainTimeout <= 0 {
		cfg.CloseDrainTimeout = 5 * time.Second
	}
	if cfg.ReadLease <= 0 {
		cfg.ReadLease = DefaultReadLease
	}
	hc := NewHCLog(logger, "raft")
	store := NewLogStore(l, LogStoreOptions{
		SyncEachStore: cfg.FsyncEveryAppend, CacheEntries: cfg.CacheEntries, CacheBytes: cfg.CacheBytes, Logger: logger,
	})
	f := newFSM(l, store, logger)
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, hc.Named("snapshots"))
	if err != nil {
		return nil, err
	}
	sole := cfg.SoleReplica || (len(cfg.Bootstrap) == 1 && cfg.Bootstrap[0].ID == cfg.NodeID)
	if err := prepareStart(cfg.Dir, l, snaps, sole, logger); err != nil {
		return nil, err
	}
	store.marker = filepath.Join(cfg.Dir, installMarker)
	rc := DefaultRaftConfig()
	if cfg.Raft != nil {
		c := *cfg.Raft
		rc = &c
	}
	rc.LocalID, rc.Logger = cfg.NodeID, hc
	if rc.TrailingLogs == 0 {
		// With 0, a compaction could name the last entry and look like a
		// truncation of the whole log to DeleteRange.
		rc.TrailingLogs = 1
	}
	trans, abstainer, err := abstainIfDamaged(cfg, l, store, rc, sole, logger)
	if err != nil {
		return nil, err
	}

	bootstrapped := false
	if len(cfg.Bootstrap) > 0 {
		has, err := raft.HasExistingState(store, cfg.Stable, snaps)
		if err != nil {
			return nil, err
		}
		if !has {
			conf := raft.Configuration{Servers: cfg.Bootstrap}
			if err := raft.BootstrapCluster(rc, store, cfg.Stable, snaps, cfg.Transport, conf); err != nil {
				return nil, fmt.Errorf("bootstrap: %w", err)
			}
			bootstrapped = true
		}
	}
	g := &Group{
		cfg: cfg, logger: logger, store: store, fsm: f, log: l, done: make(chan struct{}),
		stop: make(chan struct{}), control: make(chan struct{}, 1), bootstrapped: bootstrapped,
		abstainer: abstainer, snaps: snaps, opened: time.Now(),
	}
	g.mu.drained = make(chan struct{})
	if cfg.LogSource != nil {
		g.copy = newLogCopy(cfg.Dir, cfg.Group, cfg.SegmentOptions, cfg.LogSource, logger)
		if err := g.copy.prune(l.LastIndex()); err != nil {
			logger.Warn("replication: cannot check the staged log copy", zap.Error(err))
		}
		f.install = g.install
		if t, ok := cfg.Transport.(installGater); ok {
			t.SetInstallGate(g.installGate)
		}
	}
	f.controlled = g.kickControl
	r, err := raft.NewRaft(rc, f, store, cfg.Stable, snaps, trans)
	if err != nil {
		if abstainer != nil {
			abstainer.halt()
		}
		g.closeCopy()
		return nil, err
	}
	g.raft = r
	leading := func() bool { return r.State() == raft.Leader }
	store.leading.Store(&leading)
	if c, ok := cfg.Transport.(catchUpSetter); ok {
		c.SetCatchUp(rc.MaxAppendEntries, g.nudge)
	}
	f.started.Store(true)

	g.wg.Add(1)
	go g.watchLeader()
	if !cfg.FsyncEveryAppend {
		g.wg.Add(1)
		go g.syncEvery(cfg.FsyncInterval)
	}
	return g, nil
}

// watchLeader follows raft's leadership signal: on a gain it starts
// awaitLeaderReady, which reports the gain once the leader is ready; a loss
// is reported at once.
func (g *Group) watchLeader() {
	defer g.wg.Done()
	for {
		select {
		case <-g.done:
			return
		case v := <-g.raft.LeaderCh():
			g.logger.Info("replication: leadership changed", zap.Bool("leader", v), zap.Uint64("term", g.raft.CurrentTerm()))
			if v {
				g.wg.Add(1)
				go g.awaitLeaderReady(g.raft.CurrentTerm())
				continue
			}
			g.readyTerm.Store(0)
			g.callLeaderFns(false)
			if g.store.writeFailing() {
				g.passLeadership() // storefail.go
			}
		}
	}
}

func (g *Group) callLeaderFns(v bool) {
	g.mu.Lock()
	fns := g.mu.onLeader
	g.mu.Unlock()
	for _, fn := range fns {
		fn(v)
	}
}

// awaitLeaderReady marks this replica ready to serve as leader of term once
// everything committed before it is applied, then reports the gain: a new
// leader knows the commit index only after committing an entry of its own
// term, and until then its high watermark may trail what the previous
// leader acknowledged. Serving before that would show consumers a high
// watermark that moved backwards (a consumer starting "at the end" would
// re-read the partition).
func (g *Group) awaitLeaderReady(term uint64) {
	defer g.wg.Done()
	// Through wait: raft never answers a barrier still queued when it
	// shuts down, and Close waits for this goroutine (seen: a broker stuck
	// in Close when a group was elected just before its shutdown).
	t0 := time.Now()
	if _, err := g.wait(context.Background(), g.raft.Barrier(0)); err != nil {
		return // lost leadership or shutting down
	}
	g.extendLease(term, t0) // the barrier committed in term: a majority acknowledged it
	if g.raft.CurrentTerm() == term && g.raft.State() == raft.Leader {
		g.readyTerm.Store(term)
		g.callLeaderFns(true)
	}
}

// syncEvery is the interval fsync policy.
func (g *Group) syncEvery(d time.Duration) {
	defer g.wg.Done()
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-g.done:
			return
		case <-t.C:
			if err := g.store.Sync(); err != nil && !errors.Is(err, segment.ErrClosed) {
				g.logger.Error("replication: interval fsync failed", zap.Error(err))
			}
		}
	}
}

// enter registers a call that will wait on raft; false once closing.
func (g *Group) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mu.closing {
		return false
	}
	g.mu.inflight++
	return true
}

func (g *Group) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.mu.inflight--
	if g.mu.closing && g.mu.inflight == 0 {
		close(g.mu.drained)
	}
}

// Apply replicates batches, in order and with consecutive offsets, and
// returns once they are committed and applied: base is the first batch's
// base offset, last the last batch's last offset. Only the leader accepts.
//
// Each batch must be one framed Kafka v2 record batch, already validated
// by the caller (CRC included). Apply takes ownership of the slices: their
// base offsets are rewritten, raft keeps them in memory to replicate, and
// the caller must not modify them, even after Apply returns.
//
// Errors, to be tested in this order: ErrIndeterminate wrapping the cause
// (raft.ErrLeadershipLost, the context's error, or any error after an
// earlier batch of the call was queued: may or may not commit; retry,
// deduplicating), *NotLeaderError (nothing appended; retry at the hint),
// ErrTransferInProgress (nothing appended; retry), ErrShutdown,
// ErrInvalidBatch (nothing appended; do not retry).
func (g *Group) Apply(ctx context.Context, batches [][]byte) (base, last int64, err error) {
	if len(batches) == 0 {
		return 0, 0, fmt.Errorf("%w: no batches", ErrInvalidBatch)
	}
	for i, b := range batches {
		if err := checkBatch(b); err != nil {
			return 0, 0, fmt.Errorf("%w: batch %d: %w", ErrInvalidBatch, i, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	if !g.enter() {
		return 0, 0, ErrShutdown
	}
	defer g.leave()
	if g.raft.State() != raft.Leader {
		// Cheap early answer; raft checks again when it takes the entry.
		return 0, 0, g.convert(ctx, raft.ErrNotLeader, false)
	}
	fs := make([]raft.Future, len(batches))
	timeout := enqueueTimeout(ctx)
	term, t0 := g.raft.CurrentTerm(), time.Now() // a commit renews the read lease (lease.go)
	g.applyMu.Lock()
	for i, b := range batches {
		fs[i] = g.raft.Apply(b, timeout)
	}
	g.applyMu.Unlock()
	if i, err := g.wait(ctx, fs...); err != nil {
		err = g.convert(ctx, err, true)
		if i > 0 && !errors.Is(err, ErrIndeterminate) {
			// Earlier batches of the call were queued and may commit.
			err = fmt.Errorf("%w: batch %d of %d: %w", ErrIndeterminate, i, len(fs), err)
		}
		return 0, 0, err
	}
	g.extendLease(term, t0)
	for i, f := range fs {
		r, _ := f.(raft.ApplyFuture).Response().(applyResult)
		if r.err != nil {
			return 0, 0, r.err
		}
		if i == 0 {
			base = r.base
		}
		last = r.last
	}
	return base, last, nil
}

// checkBatch checks the framing the log relies on (segment checks the
// same when storing; failing there would cost the leader its leadership).
func checkBatch(b []byte) error {
	h, err := record.ParseHeader(b)
	if err != nil {
		return err
	}
	if h.Size() != len(b) {
		return fmt.Errorf("batch length says %d bytes, %d present", h.Size(), len(b))
	}
	if h.RecordCount < 1 || h.LastOffsetDelta != h.RecordCount-1 {
		return fmt.Errorf("record count %d, last offset delta %d", h.RecordCount, h.LastOffsetDelta)
	}
	if len(b) > segment.MaxEntryBytes {
		return fmt.Errorf("%d bytes, more than %d", len(b), segment.MaxEntryBytes)
	}
	return nil
}

// wait waits for every future, in order, or for ctx, or for the group to
// shut down, and returns the first error with the index of the future
// that failed (0 for ctx and shutdown).
//
// hashicorp/raft does not answer a future still in one of its buffered
// channels when it shuts down (an Apply future has no shutdown channel),
// so the wait on g.done is needed, and the goroutine below may outlive a
// Close that did not drain: Close waits for calls in flight first, which
// raft answers while it runs.
func (g *Group) wait(ctx context.Context, fs ...raft.Future) (int, error) {
	type result struct {
		i   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		for i, f := range fs {
			if err := f.Error(); err != nil {
				done <- result{i, err}
				return
			}
		}
		done <- result{}
	}()
	select {
	case r := <-done:
		return r.i, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-g.done:
		return 0, raft.ErrRaftShutdown
	}
}

// call runs one raft request that returns a future, under ctx.
// submitted: the request goes into the raft log (membership changes).
func (g *Group) call(ctx context.Context, submitted bool, req func(timeout time.Duration) raft.Future) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !g.enter() {
		return ErrShutdown
	}
	defer g.leave()
	_, err := g.wait(ctx, req(enqueueTimeout(ctx)))
	return g.convert(ctx, err, submitted)
}

// HighWatermark is the offset after the last committed and applied batch:
// consumers read below it.
func (g *Group) HighWatermark() int64 { return g.fsm.highWatermark() }

// Changed returns a channel closed when the high watermark next moves.
// Take it before reading HighWatermark, so that no move is missed.
func (g *Group) Changed() <-chan struct{} { return g.fsm.changed() }

// Log is the partition's log, for reads below HighWatermark. Do not write
// to it: raft is its writer.
func (g *Group) Log() *segment.Log { return g.log }

// Leader returns the leader this replica knows of, empty if none.
func (g *Group) Leader() (raft.ServerID, raft.ServerAddress) {
	addr, id := g.raft.LeaderWithID()
	return id, addr
}

// IsLeader reports whether this replica is the leader now. Leadership can
// be lost the next moment; Apply is what decides.
func (g *Group) IsLeader() bool {
	return g.raft.State() == raft.Leader && g.readyTerm.Load() == g.raft.CurrentTerm()
}

// OnLeaderChange registers fn, called with true when this replica has
// become the leader and is ready to serve (IsLeader turns true), and false
// when it stops being it. A gain and the loss that follows it may be
// reported from different goroutines, so fn must tolerate a stale call
// (check IsLeader) and must not block long. Registering does not call fn:
// check IsLeader after registering. Consecutive changes may be coalesced
// into the latest one.
func (g *Group) OnLeaderChange(fn func(isLeader bool)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.mu.onLeader = append(g.mu.onLeader[:len(g.mu.onLeader):len(g.mu.onLeader)], fn)
}

// TransferLeadership hands leadership to the voter to (any up-to-date
// voter if to is empty) and returns once it took over. Only the leader
// can.
func (g *Group) TransferLeadership(ctx context.Context, to raft.ServerID, addr raft.ServerAddress) error {
	return g.call(ctx, false, func(time.Duration) raft.Future {
		if to == "" {
			return g.raft.LeadershipTransfer()
		}
		return g.raft.LeadershipTransferToServer(to, addr)
	})
}

// AddVoter adds a voter, or promotes a non-voter, once the configuration
// change commits. Add a new replica as a non-voter first and promote it
// once caught up, so that it does not count towards the quorum while
// empty.
func (g *Group) AddVoter(ctx context.Context, id raft.ServerID, addr raft.ServerAddress) error {
	return g.call(ctx, true, func(t time.Duration) raft.Future { return g.raft.AddVoter(id, addr, 0, t) })
}

// AddNonvoter adds a replica that receives the log but does not vote.
func (g *Group) AddNonvoter(ctx context.Context, id raft.ServerID, addr raft.ServerAddress) error {
	return g.call(ctx, true, func(t time.Duration) raft.Future { return g.raft.AddNonvoter(id, addr, 0, t) })
}

// DemoteVoter makes a voter a non-voter.
func (g *Group) DemoteVoter(ctx context.Context, id raft.ServerID) error {
	return g.call(ctx, true, func(t time.Duration) raft.Future { return g.raft.DemoteVoter(id, 0, t) })
}

// RemoveServer removes a replica from the group. Its owner then closes it
// (ShutdownOnRemove is off).
func (g *Group) RemoveServer(ctx context.Context, id raft.ServerID) error {
	return g.call(ctx, true, func(t time.Duration) raft.Future { return g.raft.RemoveServer(id, 0, t) })
}

// Configuration returns the latest configuration this replica knows of
// (committed or not).
func (g *Group) Configuration() ([]raft.Server, error) {
	f := g.raft.GetConfiguration()
	if err := g.call(context.Background(), false, func(time.Duration) raft.Future { return f }); err != nil {
		return nil, err
	}
	return f.Configuration().Servers, nil
}

// Status is a replica's view of its group.
type Status struct {
	Term           uint64
	State          raft.RaftState
	LeaderID       raft.ServerID
	CommitIndex    uint64 // highest raft index known committed
	AppliedIndex   uint64 // highest raft index applied to the FSM
	LastIndex      uint64 // last raft index in the log
	HighWatermark  int64  // offset after the last committed batch
	LogEndOffset   int64  // offset the next stored batch gets
	LogStartOffset int64
	// SnapshotInstalls counts snapshot installs the leader attempted on
	// this replica since it opened.
	SnapshotInstalls int64
	// AbstainUntil: the replica's log lost acknowledged entries and it
	// does not vote until its last index reaches this (abstain.go); 0 =
	// healthy.
	AbstainUntil uint64
	// Copy is the staged copy of the leader's log for a snapshot install
	// (zero when none).
	Copy CopyStatus
	// ServedCopyBytes counts the entry bytes this replica served to other
	// replicas' log copies since it opened.
	ServedCopyBytes int64
	LogSizeBytes    int64 // bytes of the log's segments
	// LastContact is when a follower last heard from its leader (zero:
	// never, or this replica leads).
	LastContact time.Time
}

// Status returns the replica's current view.
func (g *Group) Status() Status {
	id, _ := g.Leader()
	st := Status{
		Term: g.raft.CurrentTerm(), State: g.raft.State(), LeaderID: id,
		CommitIndex: g.raft.CommitIndex(), AppliedIndex: g.raft.AppliedIndex(), LastIndex: g.log.LastIndex(),
		HighWatermark: g.HighWatermark(), LogEndOffset: g.log.NextOffset(), LogStartOffset: g.LogStartOffset(),
		SnapshotInstalls: g.fsm.installs.Load(), AbstainUntil: g.store.AbstainUntil(),
		ServedCopyBytes: g.served.Load(), LogSizeBytes: g.log.Size(),
	}
	if g.copy != nil {
		st.Copy = g.copy.status()
	}
	if st.State != raft.Leader {
		st.LastContact = g.raft.LastContact()
	}
	return st
}

// Close stops the replica: new calls fail with ErrShutdown, calls in
// flight get up to CloseDrainTimeout to finish, then raft shuts down, the
// group's goroutines stop, and the log is closed. It does not close the
// transport or the stable store, and does not leave the group (see
// RemoveServer).
func (g *Group) Close() error {
	g.mu.Lock()
	if g.mu.closing {
		g.mu.Unlock()
		return ErrShutdown
	}
	g.mu.closing = true
	if g.mu.inflight == 0 {
		close(g.mu.drained)
	}
	g.mu.Unlock()
	close(g.stop)
	t := time.NewTimer(g.cfg.CloseDrainTimeout)
	select {
	case <-g.mu.drained:
	case <-t.C:
		g.logger.Warn("replication: closing with calls still waiting on raft")
	}
	t.Stop()
	StopHeartbeats(g.cfg.Transport)
	err := g.raft.Shutdown().Error()
	if g.abstainer != nil {
		g.abstainer.halt()
	}
	close(g.done)
	g.wg.Wait()
	g.closeCopy()
	if cerr := g.log.Close(); err == nil {
		err = cerr
	}
	return err
}

// Bootstrapped reports whether OpenGroup bootstrapped the group, finding no
// earlier state: a group that never had a leader.
func (g *Group) Bootstrapped() bool { return g.bootstrapped }

// installGater is a transport that lets a group copy the log before raft
// sees a snapshot install (transport.Transport).
type installGater interface {
	SetInstallGate(func(ctx context.Context, req *raft.InstallSnapshotRequest) error)
}

// closeCopy unsets the install gate and stops the log copy (its staged
// part stays on disk for the next start).
func (g *Group) closeCopy() {
	if g.copy == nil {
		return
	}
	if t, ok := g.cfg.Transport.(installGater); ok {
		t.SetInstallGate(nil)
	}
	g.copy.close()
}
