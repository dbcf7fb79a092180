package client

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
)

// TopicPartition names one partition of a topic.
type TopicPartition struct {
	Topic     string
	Partition int32
}

func (tp TopicPartition) String() string { return fmt.Sprintf("%s/%d", tp.Topic, tp.Partition) }

func (tp TopicPartition) compare(o TopicPartition) int {
	return cmp.Or(cmp.Compare(tp.Topic, o.Topic), cmp.Compare(tp.Partition, o.Partition))
}

// GroupConsumer is a member of a consumer group: the group's coordinator
// (a broker) assigns it partitions of the topics it subscribes to, and it
// reads them from their committed offsets and commits how far it got.
// Members of one group share the partitions; each partition is read by
// one member at a time.
//
// Two goroutines of its own run beside the caller's: the heartbeat loop
// (joins, heartbeats, learns the assignment; see member) and, unless
// auto-commit is off, the auto-commit loop. Close (or Client.Close)
// stops them and waits.
//
// Poll, and the callbacks it runs (OnAssigned, OnRevoked, OnLost,
// OnReset), are for one goroutine; so are Seek, Pause and Resume, which
// may be called from the callbacks. The commit methods, MarkRecords,
// Assignment, Positions and Member are safe from any goroutine.
//
// Why reconciliation happens in Poll and not on the heartbeat loop: a
// revoked partition must be committed after the records returned for it
// have been processed, and only the next Poll says they have been. The
// cost is Kafka's: a member that does not Poll within the rebalance
// timeout holds its revoked partitions until the coordinator fences it.
type GroupConsumer struct {
	c     *Client
	group string
	cfg   groupConfig

	ctx        context.Context // cancelled last by Close: stops the loops and commits
	cancel     context.CancelFunc
	pollCtx    context.Context // cancelled first by Close: aborts a Poll in progress
	pollCancel context.CancelFunc
	pollMu     sync.Mutex     // held by Poll; Close takes it so no callback runs after
	wg         sync.WaitGroup // the heartbeat loop, the auto-commit loop, async commits
	hbNow      chan struct{}  // buffered 1: heartbeat now (owned changed)
	commitMu   sync.Mutex     // one commit at a time (see commit)

	mu struct {
		sync.Mutex
		m          *member
		parts      map[TopicPartition]*partState // owned partitions
		paused     map[TopicPartition]bool
		wake       context.Context // cancelled (and replaced) when Poll should reconcile
		wakeCancel context.CancelFunc
		seq        uint64        // commit snapshots taken
		lastAsync  chan struct{} // closed when the last CommitAsync is done
		closed     bool
	}
}

// partState is one owned partition's positions. Guarded by
// GroupConsumer.mu.
type partState struct {
	pos       int64  // the next offset to fetch (and after the last record returned)
	processed int64  // pos when the current Poll began: what auto-commit commits
	marked    int64  // after the last record marked (MarkRecords); -1 = none
	committed int64  // the last offset known committed; -1 = none
	seq       uint64 // the snapshot of the last commit applied (see commit)
	hw        int64  // the high watermark at the last fetch
}

// NewGroupConsumer makes a member of group. It checks the options and
// starts the heartbeat loop, which joins the group in the background;
// the first Polls take the assignment and start fetching.
func (c *Client) NewGroupConsumer(group string, opts ...GroupOpt) (*GroupConsumer, error) {
	cfg := defaultGroupConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if group == "" {
		return nil, errors.New("client: NewGroupConsumer: empty group name")
	}
	gc := &GroupConsumer{c: c, group: group, cfg: cfg, hbNow: make(chan struct{}, 1)}
	gc.ctx, gc.cancel = context.WithCancel(context.Background())
	gc.pollCtx, gc.pollCancel = context.WithCancel(gc.ctx)
	gc.mu.m = newMember()
	gc.mu.parts = make(map[TopicPartition]*partState)
	gc.mu.paused = make(map[TopicPartition]bool)
	gc.mu.wake, gc.mu.wakeCancel = context.WithCancel(context.Background())
	gc.mu.lastAsync = make(chan struct{})
	close(gc.mu.lastAsync)

	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		gc.cancel()
		return nil, ErrClosed
	}
	c.mu.groups[gc] = struct{}{}
	c.mu.Unlock()

	gc.wg.Go(gc.heartbeatLoop)
	if cfg.commit != commitManual {
		gc.wg.Go(gc.autoCommitLoop)
	}
	return gc, nil
}

// Group returns the group's name.
func (gc *GroupConsumer) Group() string { return gc.group }

// Member returns the member id and epoch the coordinator gave (empty and
// 0 before the member has joined).
func (gc *GroupConsumer) Member() (id string, epoch int32) {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	return gc.mu.m.id, gc.mu.m.epoch
}

// Assignment returns the partitions the member owns now, sorted.
func (gc *GroupConsumer) Assignment() []TopicPartition {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	return sortedTPs(gc.mu.parts)
}

// Positions returns the next offset Poll returns of each owned partition.
func (gc *GroupConsumer) Positions() map[TopicPartition]int64 {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	out := make(map[TopicPartition]int64, len(gc.mu.parts))
	for tp, st := range gc.mu.parts {
		out[tp] = st.pos
	}
	return out
}

// Seek moves an owned partition's position: the next Poll returns its
// records from offset (the ResetPolicy applies if it is not stored).
// Auto-commit commits it from the Poll after. It fails for a partition
// the member does not own: call it from OnAssigned to move a partition
// as it arrives.
func (gc *GroupConsumer) Seek(topic string, partition int32, offset int64) error {
	tp := TopicPartition{topic, partition}
	if offset < 0 {
		return fmt.Errorf("client: Seek %s: offset %d is negative", tp, offset)
	}
	gc.mu.Lock()
	defer gc.mu.Unlock()
	st, ok := gc.mu.parts[tp]
	if !ok {
		return fmt.Errorf("client: Seek %s: the member does not own it (owned: %v)", tp, sortedTPs(gc.mu.parts))
	}
	st.pos, st.marked = offset, -1
	return nil
}

// Pause stops fetching these partitions until Resume; the member keeps
// them (and heartbeats). A pause outlasts rebalances: a paused partition
// that is revoked and assigned again stays paused.
func (gc *GroupConsumer) Pause(parts ...TopicPartition) {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	for _, tp := range parts {
		gc.mu.paused[tp] = true
	}
}

// Resume undoes Pause.
func (gc *GroupConsumer) Resume(parts ...TopicPartition) {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	for _, tp := range parts {
		delete(gc.mu.paused, tp)
	}
}

// Poll returns the next records of the partitions the member owns. It
// first takes in what the coordinator changed: revoked partitions are
// passed to OnRevoked, committed (unless auto-commit is off) and
// released; new ones start at their committed offset (or by the
// ResetPolicy) and are passed to OnAssigned. Then it fetches, waiting up
// to FetchMaxWait for records, so it may return none and a nil error.
//
// With auto-commit (the default), calling Poll says that the records
// the previous Poll returned have been processed: they are committed by
// the next auto-commit, on revoke and on Close (at least once: a crash
// before a commit replays them).
//
// After Close, Poll returns ErrClosed. Errors the coordinator returns
// that no retry helps (an invalid subscription, an unsupported broker)
// are returned once each; the member keeps trying.
func (gc *GroupConsumer) Poll(ctx context.Context) ([]*Record, error) {
	gc.pollMu.Lock()
	defer gc.pollMu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(gc.pollCtx, cancel)
	defer stop()

	gc.beginPoll()
	deadline := time.NewTimer(gc.cfg.fetch.maxWait)
	defer deadline.Stop()
	for {
		if gc.pollCtx.Err() != nil {
			return nil, ErrClosed
		}
		gc.mu.Lock()
		wake := gc.mu.wake // taken before reconciling: a change from now on cancels it
		gc.mu.Unlock()
		if err := gc.reconcile(ctx); err != nil {
			if gc.pollCtx.Err() != nil {
				return nil, ErrClosed
			}
			return nil, err
		}
		pos, err := gc.fetchable()
		if err != nil {
			return nil, err
		}
		if len(pos) == 0 {
			select {
			case <-wake.Done():
				continue
			case <-deadline.C:
				return nil, nil
			case <-ctx.Done():
				if gc.pollCtx.Err() != nil {
					return nil, ErrClosed
				}
				return nil, ctx.Err()
			}
		}
		fctx, fcancel := context.WithCancel(ctx)
		stopWake := context.AfterFunc(wake, fcancel)
		var recs []*Record
		err = gc.c.retry(fctx, time.Now().Add(gc.c.cfg.retryTimeout), func(ctx context.Context, _ int) error {
			var err error
			recs, err = gc.fetch(ctx, pos)
			return err
		})
		stopWake()
		fcancel()
		switch {
		case gc.pollCtx.Err() != nil:
			return nil, ErrClosed
		case len(recs) > 0:
			return recs, nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case wake.Err() != nil:
			continue // the assignment changed: reconcile, then fetch again
		}
		return nil, err
	}
}

// beginPoll records that the records returned so far were processed.
func (gc *GroupConsumer) beginPoll() {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	for _, st := range gc.mu.parts {
		st.processed = st.pos
	}
}

// fetchable returns what to fetch (owned, not paused, from where), or an
// error the heartbeat loop left for Poll.
func (gc *GroupConsumer) fetchable() (map[TopicPartition]int64, error) {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	if err := gc.mu.m.err; err != nil {
		gc.mu.m.err = nil
		return nil, aboutGroup(gc.group, "", err)
	}
	pos := make(map[TopicPartition]int64, len(gc.mu.parts))
	for tp, st := range gc.mu.parts {
		if !gc.mu.paused[tp] {
			pos[tp] = st.pos
		}
	}
	return pos, nil
}

// wakePoll makes a Poll in progress reconcile: it cancels the wake
// context Poll watches.
func (gc *GroupConsumer) wakePoll() {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	gc.mu.wakeCancel()
	gc.mu.wake, gc.mu.wakeCancel = context.WithCancel(context.Background())
}

// reconcile makes what the member owns match the coordinator's
// assignment (see member.plan): lost partitions are dropped, revoked
// ones committed and released, new ones started. The callbacks run here,
// on the goroutine calling Poll.
func (gc *GroupConsumer) reconcile(ctx context.Context) error {
	gc.mu.Lock()
	revoke, lost, assign := gc.mu.m.plan()
	gc.mu.Unlock()
	if len(lost) > 0 {
		gc.c.log.Info("group member fenced: partitions lost", zap.String("group", gc.group), zap.Stringers("partitions", lost))
		if gc.cfg.onLost != nil {
			gc.cfg.onLost(ctx, lost)
		}
		gc.release(lost)
	}
	if len(revoke) > 0 {
		if gc.cfg.onRevoked != nil {
			gc.cfg.onRevoked(ctx, revoke)
		}
		if gc.cfg.commit != commitManual {
			// A failed commit does not keep the partition: the
			// coordinator waits for it, and the next owner starts
			// from the last commit (at least once).
			if err := gc.commitSnapshot(ctx, revoke); err != nil {
				gc.c.log.Warn("commit on revoke", zap.String("group", gc.group), zap.Error(err))
			}
		}
		gc.release(revoke)
	}
	if len(assign) > 0 {
		starts, committed, err := gc.startPositions(ctx, assign)
		if err != nil {
			return aboutGroup(gc.group, "", fmt.Errorf("start %v: %w", assign, err))
		}
		gc.mu.Lock()
		for _, tp := range assign {
			p := starts[tp]
			gc.mu.parts[tp] = &partState{pos: p, processed: p, marked: -1, committed: committed[tp]}
		}
		gc.mu.m.acquire(assign)
		gc.mu.Unlock()
		gc.heartbeatNow()
		if gc.cfg.onAssigned != nil {
			gc.cfg.onAssigned(ctx, assign)
		}
	}
	return nil
}

// release drops partitions and has the next heartbeat say so.
func (gc *GroupConsumer) release(tps []TopicPartition) {
	gc.mu.Lock()
	for _, tp := range tps {
		delete(gc.mu.parts, tp)
	}
	gc.mu.m.release(tps)
	gc.mu.Unlock()
	gc.heartbeatNow()
}

// Close leaves the group gracefully: it stops a Poll in progress (which
// returns ErrClosed), waits for CommitAsync calls, passes the owned
// partitions to OnRevoked, commits them (unless auto-commit is off),
// stops the heartbeat loop and sends the leave heartbeat (epoch -1, or
// -2 for a static member, whose partitions wait for it for the session
// timeout). ctx bounds the commit and the leave. Call it from the
// goroutine that polls, not from a callback. It returns the errors of
// the commit and the leave; calling it again returns nil.
func (gc *GroupConsumer) Close(ctx context.Context) error {
	gc.mu.Lock()
	if gc.mu.closed {
		gc.mu.Unlock()
		return nil
	}
	gc.mu.closed = true
	lastAsync := gc.mu.lastAsync
	gc.mu.Unlock()
	gc.pollCancel()
	gc.pollMu.Lock() // a Poll in progress has returned
	defer gc.pollMu.Unlock()

	var errs []error
	select {
	case <-lastAsync:
	case <-ctx.Done():
	}
	gc.mu.Lock()
	owned := sortedTPs(gc.mu.parts)
	joined := gc.mu.m.joined() && !gc.mu.m.lost
	gc.mu.Unlock()
	if joined && len(owned) > 0 {
		if gc.cfg.onRevoked != nil {
			gc.cfg.onRevoked(ctx, owned)
		}
		if gc.cfg.commit != commitManual {
			errs = append(errs, gc.commitSnapshot(ctx, owned))
		}
	}
	gc.cancel()
	gc.wg.Wait()
	if joined {
		errs = append(errs, gc.leave(ctx))
	}
	gc.c.mu.Lock()
	delete(gc.c.mu.groups, gc)
	gc.c.mu.Unlock()
	return errors.Join(errs...)
}

// abort stops the consumer without committing or leaving (Client.Close):
// the coordinator gives its partitions away after the session timeout.
func (gc *GroupConsumer) abort() {
	gc.mu.Lock()
	gc.mu.closed = true
	gc.mu.Unlock()
	gc.pollCancel()
	gc.cancel()
	gc.wg.Wait()
}
