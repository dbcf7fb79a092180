package replication

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"

	"github.com/stratalog/strata/pkg/segment"
)

// A snapshot install stands for the leader's log: the snapshot holds
// offsets, the data is the log (fsm.Restore). The copy of that log is made
// here, apart from raft, before raft sees the install:
//
//	leader                            follower transport           follower logCopy (goroutine the Group owns)
//	InstallSnapshot(index I) ───────▶ gate: ensure(leader, I) ───▶ run: ReadLog(from staged last+1)
//	  waits while chunks are served                                  ──▶ append to <dir>/logcopy/, fsync every copySyncBytes
//	◀──────────── ReadLog chunks ─────────────────────────────────── until the staged copy reaches I
//	                                  queue the install for raft ◀─ ensure returns
//	                                  raft: fsm.Restore ─▶ Group.install: LogStore.Replace from the staged copy (local disk)
//	◀──────────── answer ───────────── raft answers                  the staging directory is deleted
//
// The staging directory is a segment log of its own (docs/format/logcopy.md):
// a crash, a broken stream or a new leader leaves it as it was after its
// last fsync, and the next copy continues after its last entry. Every
// entry it holds was committed on its source (ReadLog serves up to the
// commit index), and committed entries are the same on every replica, so a
// copy resumed from another replica (a new leader) stays one log. If that
// replica no longer holds the entries right after the staged ones (its
// retention deleted them), its stream starts further on and the copy
// starts over from it.
//
// Nothing bounds a copy's total time; a stream that delivers nothing for
// copyIdle fails, and the install's gate answers the leader with the error
// (the leader's raft retries, and the copy resumes).
type logCopy struct {
	dir    string
	opts   segment.Options
	group  string
	source LogSource
	logger *zap.Logger
	idle   time.Duration

	// ctx ends every run and ensure; cancelled by close.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu struct {
		sync.Mutex
		log    *segment.Log // the staged copy; nil until first needed
		run    *copyRun     // the copy in progress, nil if none
		target uint64       // the raft index the copy must reach
		total  int64        // the source's log size when its stream started
		// changed is closed and replaced whenever the staged copy grows or a
		// run ends: ensure waits on it.
		changed chan struct{}
		closed  bool
		taking  bool // take is swapping the copy in: no run may start
	}
}

// copyRun is one copy in progress, from one source.
type copyRun struct {
	from   raft.ServerID
	cancel context.CancelFunc
	done   chan struct{}
	err    error // set before done is closed
}

const (
	// copyDirName is the staging directory inside the partition directory.
	// Part of the on-disk format.
	copyDirName = "logcopy"
	// copySyncBytes: the staged copy is fsynced after this many bytes, so a
	// crash loses at most that much of it.
	copySyncBytes = 16 << 20
	// copyIdle: a stream that delivers no chunk for this long is given up.
	copyIdle = 30 * time.Second
)

func newLogCopy(partDir, group string, opts segment.Options, source LogSource, logger *zap.Logger) *logCopy {
	if opts.Logger == nil {
		opts.Logger = logger
	}
	c := &logCopy{
		dir: filepath.Join(partDir, copyDirName), opts: opts, group: group, source: source,
		logger: logger, idle: copyIdle,
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.mu.changed = make(chan struct{})
	return c
}

// CopyStatus is the state of a replica's staged log copy.
type CopyStatus struct {
	Running     bool          // a copy is running now
	Source      raft.ServerID // where the running (or last) copy reads from
	StagedIndex uint64        // last raft index staged (0: nothing staged)
	TargetIndex uint64        // the raft index the copy must reach
	StagedBytes int64         // bytes staged
	TotalBytes  int64         // the source's log size when its stream started
}

func (c *logCopy) status() CopyStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	var s CopyStatus
	if c.mu.log != nil {
		s.StagedIndex, s.StagedBytes = c.mu.log.LastIndex(), c.mu.log.Size()
	}
	if r := c.mu.run; r != nil {
		s.Running, s.Source = true, r.from
	}
	s.TargetIndex, s.TotalBytes = c.mu.target, c.mu.total
	return s
}

// openLocked opens the staging log if it is not open. Caller holds mu.
func (c *logCopy) openLocked() (*segment.Log, error) {
	if c.mu.log != nil {
		return c.mu.log, nil
	}
	l, err := segment.Open(c.dir, c.opts)
	if err != nil {
		// The staged copy is only a head start on data the leader holds:
		// one that does not open is dropped, and the copy starts over.
		c.logger.Warn("replication: discarding a staged log copy that does not open; the copy starts over", zap.Error(err))
		if rerr := os.RemoveAll(c.dir); rerr != nil {
			return nil, fmt.Errorf("replication: open the staged log copy: %w (and remove it: %v)", err, rerr)
		}
		if l, err = segment.Open(c.dir, c.opts); err != nil {
			return nil, fmt.Errorf("replication: open the staged log copy: %w", err)
		}
	}
	c.mu.log = l
	return l, nil
}

// prune deletes a staged copy that can no longer help, one the log itself
// reaches past (the replica caught up by other means since the copy
// stopped), and an empty one. The group calls it at open.
func (c *logCopy) prune(logLast uint64) error {
	if _, err := os.Stat(c.dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	l, err := c.openLocked()
	if err != nil {
		return err
	}
	if last := l.LastIndex(); last > logLast {
		c.logger.Info("replication: a staged log copy is kept for the next snapshot install",
			zap.Uint64("staged_first_index", l.FirstIndex()), zap.Uint64("staged_last_index", last), zap.Int64("staged_bytes", l.Size()))
		return nil
	}
	return c.discardLocked()
}

func (c *logCopy) broadcastLocked() {
	close(c.mu.changed)
	c.mu.changed = make(chan struct{})
}

// covered reports whether the staged copy holds index with term (term 0:
// any term).
func covered(l *segment.Log, index, term uint64) bool {
	if l == nil || index == 0 || l.LastIndex() < index || l.FirstIndex() > index {
		return false
	}
	if term == 0 {
		return true
	}
	e, err := l.ReadEntry(index)
	return err == nil && e.Term == term
}

// maxRunsPerEnsure bounds the copies one ensure starts: each ends at the
// target, or with an error that ends the ensure, so more than a few means
// a bug, not a slow copy.
const maxRunsPerEnsure = 4

// unusable says why the staged copy cannot become the log of a snapshot
// ending at index ("" if it can, or if it is empty): it starts after
// index (made for another leader's later snapshot, from a log whose
// retention went further), or holds index with another term (cannot
// happen for committed entries; checked in case).
func unusable(l *segment.Log, index, term uint64) string {
	if l.LastIndex() == 0 {
		return ""
	}
	if index < l.FirstIndex() {
		return "the staged copy starts after the snapshot's last entry"
	}
	if index <= l.LastIndex() && !covered(l, index, term) {
		return "the staged copy holds the snapshot's last entry with another term"
	}
	return ""
}

// ensure returns once the staged copy holds the entry index with term
// (term 0: any), copying from the replica from if it does not: it starts a
// copy, joins the one running, or replaces one reading from another
// replica. It returns the copy's error if the copy failed, ctx's error, or
// ErrShutdown once closed. The copy goes on when ensure returns early.
func (c *logCopy) ensure(ctx context.Context, from raft.ServerID, index, term uint64) error {
	runs := 0
	for {
		c.mu.Lock()
		if c.mu.closed {
			c.mu.Unlock()
			return ErrShutdown
		}
		if c.mu.taking {
			changed := c.mu.changed
			c.mu.Unlock()
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return ctx.Err()
			case <-c.ctx.Done():
				return ErrShutdown
			}
		}
		l, err := c.openLocked()
		if err != nil {
			c.mu.Unlock()
			return err
		}
		if covered(l, index, term) {
			c.mu.Unlock()
			return nil
		}
		if why := unusable(l, index, term); why != "" {
			// Start over: stop the run, then empty the staged copy.
			if r := c.mu.run; r != nil {
				c.mu.Unlock()
				r.cancel()
				<-r.done
				continue
			}
			c.logger.Info("replication: starting the log copy over", zap.String("why", why),
				zap.Uint64("snapshot_index", index), zap.Uint64("staged_first_index", l.FirstIndex()), zap.Uint64("staged_last_index", l.LastIndex()))
			if err := l.Reset(0); err != nil {
				c.mu.Unlock()
				return fmt.Errorf("replication: reset the staged log copy: %w", err)
			}
			c.mu.target = 0
		}
		c.mu.target = max(c.mu.target, index)
		r := c.mu.run
		if r != nil && r.from != from && from != "" {
			// A new leader sent the install: read from it instead.
			c.mu.Unlock()
			r.cancel()
			<-r.done
			continue
		}
		if r == nil {
			if from == "" {
				c.mu.Unlock()
				return errors.New("replication: snapshot install: no leader known to copy the log from")
			}
			if runs >= maxRunsPerEnsure {
				c.mu.Unlock()
				return fmt.Errorf("replication: the log copy ended %d times without reaching index %d", runs, index)
			}
			r = c.startLocked(from)
			runs++
		}
		changed := c.mu.changed
		c.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.ctx.Done():
			return ErrShutdown
		}
		select {
		case <-r.done:
			if r.err != nil {
				// Not retried here (a source that keeps failing would make
				// this a hot loop): the leader retries the install, and its
				// ensure resumes the copy.
				return r.err
			}
		default:
		}
	}
}

// startLocked starts a copy from the replica from. Caller holds mu.
func (c *logCopy) startLocked(from raft.ServerID) *copyRun {
	ctx, cancel := context.WithCancel(c.ctx)
	r := &copyRun{from: from, cancel: cancel, done: make(chan struct{})}
	c.mu.run = r
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer cancel()
		r.err = c.run(ctx, from)
		c.mu.Lock()
		if c.mu.run == r {
			c.mu.run = nil
		}
		close(r.done) // before the broadcast: a woken ensure sees the end
		c.broadcastLocked()
		c.mu.Unlock()
	}()
	return r
}

// run copies from the replica from until the staged copy reaches the
// target. Each stream must add entries, or run gives up: the loop ends.
func (c *logCopy) run(ctx context.Context, from raft.ServerID) error {
	c.mu.Lock()
	l := c.mu.log
	c.mu.Unlock()
	started := time.Now()
	startBytes := l.Size()
	c.logger.Info("replication: copying the leader's log for a snapshot install",
		zap.String("from", string(from)), zap.Uint64("staged_index", l.LastIndex()), zap.Int64("staged_bytes", startBytes))
	for {
		c.mu.Lock()
		target := c.mu.target
		c.mu.Unlock()
		last := l.LastIndex()
		if last >= target {
			c.logger.Info("replication: log copy complete",
				zap.String("from", string(from)), zap.Uint64("staged_index", last), zap.Int64("staged_bytes", l.Size()),
				zap.Int64("copied_bytes", l.Size()-startBytes), zap.Duration("took", time.Since(started)))
			return nil
		}
		added, err := c.stream(ctx, from, l)
		if err != nil {
			c.logger.Info("replication: log copy interrupted; the next install resumes it",
				zap.String("from", string(from)), zap.Uint64("staged_index", l.LastIndex()), zap.Error(err))
			return fmt.Errorf("replication: copy the log from %s: %w", from, err)
		}
		if added == 0 {
			return fmt.Errorf("replication: copy the log from %s: it has nothing committed after index %d yet", from, last)
		}
	}
}

// stream runs one ReadLog stream from the entry after the staged copy's
// last, appending what it gets; it returns the number of entries added.
func (c *logCopy) stream(ctx context.Context, from raft.ServerID, l *segment.Log) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var timedOut atomic.Bool
	idle := time.AfterFunc(c.idle, func() { timedOut.Store(true); cancel() })
	defer idle.Stop()
	next := l.LastIndex() + 1
	if l.LastIndex() == 0 {
		next = 0 // from the source's first entry
	}
	added, unsynced, first := 0, 0, true
	err := c.source.ReadLog(ctx, from, c.group, next, func(ch LogChunk) error {
		if !idle.Reset(c.idle) {
			return ctx.Err() // the idle timer fired
		}
		if first {
			first = false
			c.mu.Lock()
			c.mu.total = ch.TotalBytes
			c.mu.Unlock()
			if len(ch.Entries) > 0 && (next == 0 || ch.Entries[0].Index != next) {
				// A fresh copy, or the source no longer holds what follows
				// the staged entries: start over at its first entry.
				if next != 0 {
					c.logger.Info("replication: the source no longer holds the entries after the staged copy; copying from its start",
						zap.Uint64("staged_index", next-1), zap.Uint64("source_first_index", ch.Entries[0].Index))
				}
				if ch.BaseOffset < 0 {
					return fmt.Errorf("source sent entries from %d without their base offset", ch.Entries[0].Index)
				}
				if err := l.Reset(ch.BaseOffset); err != nil {
					return err
				}
			}
		}
		if len(ch.Entries) == 0 {
			return nil
		}
		if _, err := l.Append(ch.Entries...); err != nil {
			return err
		}
		added += len(ch.Entries)
		for _, e := range ch.Entries {
			unsynced += len(e.Data)
		}
		if unsynced >= copySyncBytes {
			if err := l.Sync(); err != nil {
				return err
			}
			unsynced = 0
		}
		c.mu.Lock()
		c.broadcastLocked()
		c.mu.Unlock()
		return nil
	})
	if serr := l.Sync(); err == nil {
		err = serr
	}
	if err != nil && timedOut.Load() {
		err = fmt.Errorf("no chunk for %s: %w", c.idle, err)
	}
	return added, err
}

// take closes the staged copy and hands its directory to fn (the swap
// into the partition's log, which moves the files away). A copy still
// running (towards a later target, or just ending) is stopped first; what
// it staged is kept. If fn fails, the staged copy stays for the next try.
func (c *logCopy) take(fn func(dir string) error) error {
	c.mu.Lock()
	for c.mu.run != nil {
		r := c.mu.run
		c.mu.Unlock()
		r.cancel()
		<-r.done
		c.mu.Lock()
	}
	if c.mu.taking {
		c.mu.Unlock()
		return errors.New("replication: the staged log copy is being swapped in already")
	}
	if c.mu.log != nil {
		if err := c.mu.log.Close(); err != nil {
			c.mu.Unlock()
			return fmt.Errorf("replication: close the staged log copy: %w", err)
		}
		c.mu.log = nil
	}
	c.mu.taking = true
	c.mu.Unlock()
	err := fn(c.dir)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.taking = false
	c.broadcastLocked()
	if err != nil {
		return err
	}
	return c.discardLocked()
}

// discardLocked deletes the staged copy. Caller holds mu.
func (c *logCopy) discardLocked() error {
	if c.mu.log != nil {
		c.mu.log.Close()
		c.mu.log = nil
	}
	c.mu.target, c.mu.total = 0, 0
	if err := os.RemoveAll(c.dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("replication: delete the staged log copy: %w", err)
	}
	return nil
}

// close stops a running copy, waits for it, and closes the staged log
// (which stays on disk, for the next start to resume).
func (c *logCopy) close() {
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return
	}
	c.mu.closed = true
	c.cancel()
	c.mu.Unlock()
	c.wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.log != nil {
		c.mu.log.Close()
		c.mu.log = nil
	}
}
