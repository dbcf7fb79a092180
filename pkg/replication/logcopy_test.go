package replication

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/stratalog/strata/pkg/replication/transport"
	"github.com/stratalog/strata/pkg/segment"
)

// logSourceFunc serves ReadLog from a function.
type logSourceFunc func(ctx context.Context, peer raft.ServerID, from uint64, fn func(LogChunk) error) error

func (f logSourceFunc) ReadLog(ctx context.Context, peer raft.ServerID, _ string, from uint64, fn func(LogChunk) error) error {
	return f(ctx, peer, from, fn)
}

// serveSegmentLog serves l as Group.ServeLog does (up to its last entry),
// in chunks of one entry.
func serveSegmentLog(ctx context.Context, l *segment.Log, from uint64, fn func(LogChunk) error) error {
	first, last := l.FirstIndex(), l.LastIndex()
	c := LogChunk{BaseOffset: -1, TotalBytes: l.Size()}
	if from <= first {
		from, c.BaseOffset = first, l.Segments()[0].BaseOffset
	}
	for i := from; i <= last; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		e, err := l.ReadEntry(i)
		if err != nil {
			return err
		}
		c.Entries = []segment.Entry{e}
		if err := fn(c); err != nil {
			return err
		}
		c = LogChunk{BaseOffset: -1}
	}
	return nil
}

// sourceLog writes n batches of about 1 KiB records, from raft index
// firstIndex, into a fresh log starting at offset base.
func sourceLog(t *testing.T, base int64, firstIndex uint64, n int) *segment.Log {
	t.Helper()
	l, err := segment.Open(t.TempDir(), segment.Options{MaxSegmentBytes: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if err := l.Reset(base); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		e := segment.Entry{Index: firstIndex + uint64(i), Term: 2, Type: segment.EntryBatch, Data: testBatch(t, fmt.Sprint("s", i), 16, 1000)}
		if _, err := l.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// TestLogCopyResumes: a copy broken part-way, or cut by a restart, goes on
// from the last staged entry; one whose source no longer holds what
// follows the staged entries starts over at the source's start.
func TestLogCopyResumes(t *testing.T) {
	src := sourceLog(t, 500, 40, 200) // ~3.3 MB
	ctx := context.Background()
	var served atomic.Int64
	var failAfter atomic.Int64 // >0: fail the stream after that many bytes served in total
	block := make(chan struct{})
	var blockAfter atomic.Int64
	var asked []string // peer@from of every stream
	var askedMu sync.Mutex
	source := logSourceFunc(func(ctx context.Context, peer raft.ServerID, from uint64, fn func(LogChunk) error) error {
		askedMu.Lock()
		asked = append(asked, fmt.Sprintf("%s@%d", peer, from))
		askedMu.Unlock()
		return serveSegmentLog(ctx, src, from, func(c LogChunk) error {
			if n := failAfter.Load(); n > 0 && served.Load() >= n {
				failAfter.Store(0)
				return errLogFault
			}
			if n := blockAfter.Load(); n > 0 && served.Load() >= n {
				select {
				case <-block:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			for _, e := range c.Entries {
				served.Add(int64(len(e.Data)))
			}
			return fn(c)
		})
	})
	dir := t.TempDir()
	total := src.Size()
	last := src.LastIndex()
	lastEntry, err := src.ReadEntry(last)
	if err != nil {
		t.Fatal(err)
	}

	// A broken stream: ensure reports it; the next ensure resumes.
	c := newLogCopy(dir, "g", segment.Options{MaxSegmentBytes: 256 << 10}, source, zap.NewNop())
	failAfter.Store(total / 3)
	if err := c.ensure(ctx, "n1", last, lastEntry.Term); !errors.Is(err, errLogFault) {
		t.Fatalf("ensure with a stream that breaks: %v", err)
	}
	if staged := c.status().StagedBytes; staged == 0 || staged >= total {
		t.Fatalf("staged %d of %d bytes before the break", staged, total)
	}
	// A restart part-way: close while a copy runs, reopen on the same dir;
	// the next install comes from a new leader, n2, holding the same log.
	blockAfter.Store(total * 2 / 3)
	ensureDone := make(chan error, 1)
	go func() { ensureDone <- c.ensure(ctx, "n1", last, lastEntry.Term) }()
	waitFor(t, 10*time.Second, "the copy to reach two thirds", func() bool { return served.Load() >= total*2/3 })
	c.close()
	if err := <-ensureDone; !errors.Is(err, ErrShutdown) {
		t.Fatalf("ensure cut by close: %v", err)
	}
	close(block)
	var staged *segment.Log
	c = newLogCopy(dir, "g", segment.Options{MaxSegmentBytes: 256 << 10}, source, zap.NewNop())
	defer c.close()
	c.mu.Lock()
	staged, err = c.openLocked()
	c.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	resumeAt := staged.LastIndex() + 1
	if err := c.ensure(ctx, "n2", last, lastEntry.Term); err != nil {
		t.Fatal(err)
	}
	askedMu.Lock()
	if got, want := asked[len(asked)-1], fmt.Sprintf("n2@%d", resumeAt); got != want {
		t.Fatalf("the copy resumed with %s, want %s (streams: %v)", got, want, asked)
	}
	askedMu.Unlock()
	dataBytes := int64(0)
	for i := src.FirstIndex(); i <= last; i++ {
		e, _ := src.ReadEntry(i)
		dataBytes += int64(len(e.Data))
	}
	// Nothing was fetched twice but what the restart lost unsynced.
	if refetched := served.Load() - dataBytes; refetched > copySyncBytes {
		t.Fatalf("fetched %d bytes for a log of %d: %d again", served.Load(), dataBytes, refetched)
	}
	st := c.status()
	if st.StagedIndex != last || st.StagedBytes != total || st.TotalBytes != total {
		t.Fatalf("status after the copy: %+v; want index %d, %d bytes", st, last, total)
	}
	// The staged copy becomes a log as the source's twin.
	into, err := segment.Open(dir, segment.Options{MaxSegmentBytes: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer into.Close()
	store := NewLogStore(into, LogStoreOptions{})
	if err := c.take(store.Adopt); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readAll(t, into, src.NextOffset()), readAll(t, src, src.NextOffset())) {
		t.Fatal("the swapped-in copy differs from the source")
	}
	if into.FirstIndex() != src.FirstIndex() || into.LastIndex() != last {
		t.Fatalf("swapped-in indexes %d..%d, want %d..%d", into.FirstIndex(), into.LastIndex(), src.FirstIndex(), last)
	}
	if st := c.status(); st.StagedIndex != 0 || st.StagedBytes != 0 {
		t.Fatalf("staged copy left after the swap: %+v", st)
	}
}

// TestLogCopyStartsOverAfterAGap: the staged copy ends before what the
// source still holds (another replica whose retention went further): the
// copy starts again at the source's first entry.
func TestLogCopyStartsOverAfterAGap(t *testing.T) {
	old := sourceLog(t, 0, 1, 10)
	newer := sourceLog(t, 900, 60, 20)
	dir := t.TempDir()
	from := old
	source := logSourceFunc(func(ctx context.Context, _ raft.ServerID, fromIndex uint64, fn func(LogChunk) error) error {
		return serveSegmentLog(ctx, from, fromIndex, fn)
	})
	c := newLogCopy(dir, "g", segment.Options{MaxSegmentBytes: 256 << 10}, source, zap.NewNop())
	defer c.close()
	if err := c.ensure(context.Background(), "n1", 10, 2); err != nil {
		t.Fatal(err)
	}
	from = newer
	if err := c.ensure(context.Background(), "n2", 79, 2); err != nil {
		t.Fatal(err)
	}
	st := c.status()
	c.mu.Lock()
	first, base := c.mu.log.FirstIndex(), c.mu.log.Segments()[0].BaseOffset
	c.mu.Unlock()
	if first != 60 || st.StagedIndex != 79 || base != 900 {
		t.Fatalf("after the gap: staged %d..%d from offset %d; want 60..79 from 900", first, st.StagedIndex, base)
	}
}

// groupSource serves ReadLog from open Groups, and can hold or break the
// stream to test an install's copy.
type groupSource struct {
	mu     sync.Mutex
	groups map[raft.ServerID]*Group
	served atomic.Int64 // entry bytes served
	// holdAt > 0: a stream that has served that many bytes (in total)
	// waits for hold to close. breakAt > 0: the stream crossing it fails,
	// once.
	holdAt, breakAt atomic.Int64
	hold            chan struct{}
	held            chan struct{} // closed when a stream starts waiting
	heldOnce        sync.Once
}

func (s *groupSource) set(id raft.ServerID, g *Group) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groups[id] = g
}

func (s *groupSource) ReadLog(ctx context.Context, peer raft.ServerID, _ string, from uint64, fn func(LogChunk) error) error {
	s.mu.Lock()
	g := s.groups[peer]
	s.mu.Unlock()
	if g == nil {
		return fmt.Errorf("no replica on %s", peer)
	}
	return g.ServeLog(ctx, from, 256<<10, func(c LogChunk) error {
		if n := s.holdAt.Load(); n > 0 && s.served.Load() >= n {
			s.heldOnce.Do(func() { close(s.held) })
			select {
			case <-s.hold:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if n := s.breakAt.Load(); n > 0 && s.served.Load() >= n {
			s.breakAt.Store(0)
			return errLogFault
		}
		for _, e := range c.Entries {
			s.served.Add(int64(len(e.Data)))
		}
		return fn(c)
	})
}

// TestInstallCopiesOffRaftsMainLoop: over the real transport, a replica
// added after retention deleted the log's start copies the leader's log
// before raft sees the install. Meanwhile its raft answers votes and
// heartbeats; a stream broken part-way resumes where it stopped; the
// result is the leader's log.
func TestInstallCopiesOffRaftsMainLoop(t *testing.T) {
	logger := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	src := &groupSource{groups: map[raft.ServerID]*Group{}, hold: make(chan struct{}), held: make(chan struct{})}
	type peer struct {
		id     raft.ServerID
		mux    *transport.Mux
		tr     *transport.Transport
		stable *StableStores
		g      *Group
	}
	var peers []*peer
	for i := range 3 {
		m, err := transport.Listen("127.0.0.1:0", transport.Options{HeartbeatInterval: 50 * time.Millisecond, SnapshotTimeout: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		tr, err := m.Transport("topic/0")
		if err != nil {
			t.Fatal(err)
		}
		st, err := OpenStableStores(filepath.Join(t.TempDir(), "raft.db"))
		if err != nil {
			t.Fatal(err)
		}
		peers = append(peers, &peer{id: raft.ServerID(fmt.Sprint("n", i+1)), mux: m, tr: tr, stable: st})
	}
	open := func(p *peer, bootstrap []raft.Server) {
		g, err := OpenGroup(GroupConfig{
			Group: "topic/0", NodeID: p.id, Dir: filepath.Join(t.TempDir(), "topic-0"),
			SegmentOptions: segment.Options{MaxSegmentBytes: 1 << 20},
			LogSource:      src, Transport: p.tr, Stable: p.stable.For("topic/0"),
			Bootstrap: bootstrap, FsyncEveryAppend: false, FsyncInterval: 50 * time.Millisecond,
			Raft: testRaftConfig(), Logger: logger.With(zap.String("node", string(p.id))),
		})
		if err != nil {
			t.Fatal(err)
		}
		p.g = g
		src.set(p.id, g)
	}
	t.Cleanup(func() {
		for _, p := range peers {
			if p.g != nil {
				p.g.Close()
			}
			p.mux.Close()
			p.stable.Close()
		}
	})
	lead, newbie, voter := peers[0], peers[1], peers[2] // voter only sends a vote request
	open(lead, []raft.Server{{ID: lead.id, Address: lead.mux.Addr(), Suffrage: raft.Voter}})
	waitFor(t, 10*time.Second, "n1 to lead", lead.g.IsLeader)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// ~12 MB of 1 KiB records in 64 KiB batches, then retention deletes the
	// log's start.
	for i := range 192 {
		if _, _, err := lead.g.Apply(ctx, [][]byte{testBatch(t, fmt.Sprint("r", i), 64, 1000)}); err != nil {
			t.Fatal(err)
		}
	}
	hwm := lead.g.HighWatermark()
	if _, err := lead.g.SetLogStart(ctx, hwm/4); err != nil {
		t.Fatal(err)
	}
	if _, err := lead.g.DeleteSegments(ctx); err != nil {
		t.Fatal(err)
	}
	if lead.g.Log().FirstIndex() <= 1 {
		t.Fatal("retention deleted nothing")
	}
	var logBytes int64
	for i := lead.g.Log().FirstIndex(); i <= lead.g.Log().LastIndex(); i++ {
		e, err := lead.g.Log().ReadEntry(i)
		if err != nil {
			t.Fatal(err)
		}
		logBytes += int64(len(e.Data))
	}

	// The new replica copies; the copy is held a third of the way, then
	// its stream breaks at two thirds.
	src.holdAt.Store(logBytes / 3)
	src.breakAt.Store(logBytes * 2 / 3)
	open(newbie, nil)
	if err := lead.g.AddNonvoter(ctx, newbie.id, newbie.mux.Addr()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-src.held:
	case <-ctx.Done():
		t.Fatal("the copy never reached a third of the log")
	}
	if st := newbie.g.Status(); !st.Copy.Running || st.Copy.StagedBytes == 0 || st.Copy.TotalBytes == 0 {
		t.Fatalf("status while copying: %+v", st.Copy)
	}
	// raft on the copying replica answers a vote at once (it is not inside
	// a Restore) and keeps hearing the leader's heartbeats.
	var resp raft.RequestVoteResponse
	started := time.Now()
	err := voter.tr.RequestVote(newbie.id, newbie.mux.Addr(), &raft.RequestVoteRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(voter.id), Addr: []byte(voter.mux.Addr())},
		Term:      newbie.g.Status().Term, LastLogIndex: 1, LastLogTerm: 1,
	}, &resp)
	if err != nil || time.Since(started) > 2*time.Second {
		t.Fatalf("vote request to the copying replica: %v after %s", err, time.Since(started))
	}
	contact := newbie.g.raft.LastContact()
	waitFor(t, 5*time.Second, "a heartbeat during the copy", func() bool { return newbie.g.raft.LastContact().After(contact) })
	close(src.hold)

	waitFor(t, time.Minute, "the new replica to hold the leader's log", func() bool {
		st := newbie.g.Status()
		return st.LogEndOffset == hwm && st.HighWatermark == hwm
	})
	if got, want := readAll(t, newbie.g.Log(), hwm), readAll(t, lead.g.Log(), hwm); !bytes.Equal(got, want) {
		t.Fatalf("the installed log differs from the leader's (%d bytes vs %d)", len(got), len(want))
	}
	if refetched := src.served.Load() - logBytes; refetched > logBytes/4 {
		t.Fatalf("served %d bytes to copy a log of %d: %d again after the break", src.served.Load(), logBytes, refetched)
	}
	// Usually one install reaches raft; two when the leader gave up on a
	// held one and retried, both then let through (the second finds the
	// log in place and copies nothing).
	if n := newbie.g.Status().SnapshotInstalls; n < 1 || n > 2 {
		t.Errorf("%d snapshot installs reached raft, want 1 or 2", n)
	}
	// New appends replicate on top of the installed log.
	if _, _, err := lead.g.Apply(ctx, [][]byte{testBatch(t, "after", 4, 1000)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the append after the install", func() bool {
		return newbie.g.Status().LogEndOffset == lead.g.HighWatermark()
	})
}

// A staged copy the log has caught up past is deleted at open; one that
// does not open is dropped and the copy starts over.
func TestLogCopyPruneAndDamage(t *testing.T) {
	src := sourceLog(t, 0, 1, 20)
	source := logSourceFunc(func(ctx context.Context, _ raft.ServerID, from uint64, fn func(LogChunk) error) error {
		return serveSegmentLog(ctx, src, from, fn)
	})
	dir := t.TempDir()
	stage := func() *logCopy {
		c := newLogCopy(dir, "g", segment.Options{MaxSegmentBytes: 256 << 10}, source, zap.NewNop())
		if err := c.ensure(context.Background(), "n1", 20, 2); err != nil {
			t.Fatal(err)
		}
		c.close()
		return newLogCopy(dir, "g", segment.Options{MaxSegmentBytes: 256 << 10}, source, zap.NewNop())
	}
	c := stage()
	if err := c.prune(19); err != nil {
		t.Fatal(err)
	}
	if st := c.status(); st.StagedIndex != 20 {
		t.Fatalf("a copy ahead of the log was not kept: %+v", st)
	}
	c.close()
	c = newLogCopy(dir, "g", segment.Options{MaxSegmentBytes: 256 << 10}, source, zap.NewNop())
	if err := c.prune(20); err != nil {
		t.Fatal(err)
	}
	c.close()
	if _, err := os.Stat(filepath.Join(dir, copyDirName)); !os.IsNotExist(err) {
		t.Fatalf("a copy the log reaches was kept: %v", err)
	}

	stage().close()
	// Damage the first segment's file header: Open refuses such a log.
	segs, _ := filepath.Glob(filepath.Join(dir, copyDirName, "*.log"))
	if err := os.WriteFile(segs[0], []byte("not a segment header, not at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	c = newLogCopy(dir, "g", segment.Options{MaxSegmentBytes: 256 << 10}, source, zap.NewNop())
	defer c.close()
	if err := c.ensure(context.Background(), "n1", 20, 2); err != nil {
		t.Fatalf("a damaged staged copy was not started over: %v", err)
	}
	if st := c.status(); st.StagedIndex != 20 {
		t.Fatalf("after starting over: %+v", st)
	}
}
