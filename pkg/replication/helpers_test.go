package replication

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/stratalog/strata/pkg/record"
	"github.com/stratalog/strata/pkg/segment"
)

// testBatch encodes n records whose values are "<tag>-<i>" padded to
// valueLen bytes.
func testBatch(t testing.TB, tag string, n, valueLen int) []byte {
	t.Helper()
	recs := make([]record.Record, n)
	for i := range recs {
		v := []byte(fmt.Sprintf("%s-%d", tag, i))
		if len(v) < valueLen {
			v = append(v, bytes.Repeat([]byte{'.'}, valueLen-len(v))...)
		}
		recs[i] = record.Record{Value: v, Timestamp: time.UnixMilli(1_700_000_000_000 + int64(i))}
	}
	b, err := record.Encode(recs, record.EncodeOptions{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		<-tick.C
	}
}

// copyingTransport deep-copies the entries of every AppendEntries, as a
// real transport's encoding does. raft.InmemTransport hands the leader's
// *raft.Log to followers, whose StoreLogs rewrites the base offset in
// place: the same value, but a data race across "machines" that share no
// memory in production.
type copyingTransport struct{ *raft.InmemTransport }

func copyRequest(a *raft.AppendEntriesRequest) *raft.AppendEntriesRequest {
	c := *a
	c.Entries = make([]*raft.Log, len(a.Entries))
	for i, e := range a.Entries {
		l := *e
		l.Data = bytes.Clone(e.Data)
		l.Extensions = bytes.Clone(e.Extensions)
		c.Entries[i] = &l
	}
	return &c
}

func (t copyingTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	return t.InmemTransport.AppendEntries(id, target, copyRequest(args), resp)
}

func (t copyingTransport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	p, err := t.InmemTransport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	return copyingPipeline{p}, nil
}

type copyingPipeline struct{ raft.AppendPipeline }

func (p copyingPipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	return p.AppendPipeline.AppendEntries(copyRequest(args), resp)
}

func testRaftConfig() *raft.Config {
	c := DefaultRaftConfig()
	c.HeartbeatTimeout = 200 * time.Millisecond
	c.ElectionTimeout = 200 * time.Millisecond
	c.LeaderLeaseTimeout = 100 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.SnapshotThreshold = 64
	c.SnapshotInterval = 50 * time.Millisecond
	return c
}

// node is one broker of a test cluster, holding one replica of the group.
type node struct {
	id     raft.ServerID
	addr   raft.ServerAddress
	dir    string // the broker's data dir
	stable *StableStores
	trans  *raft.InmemTransport
	g      *Group
}

type cluster struct {
	t        testing.TB
	nodes    []*node
	logger   *zap.Logger
	fsync    bool
	cacheOff bool
	raftConf func() *raft.Config // nil = testRaftConfig
	segBytes int64               // segment size; 0 = 256 KiB
	sole     bool                // GroupConfig.SoleReplica
	lease    time.Duration       // GroupConfig.ReadLease; 0 = its default
	gmu      sync.Mutex          // guards node.g and logFault for ReadLog, which raft calls
	// logFault, when set, makes ReadLog serve one entry per chunk and fail
	// after that many chunks (see failLogReads).
	logFault *int
}

var errLogFault = errors.New("test: log source fault")

// failLogReads makes every later ReadLog fail after passing after chunks
// of one entry each (0: before the first); negative: reads work again.
func (c *cluster) failLogReads(after int) {
	c.gmu.Lock()
	defer c.gmu.Unlock()
	c.logFault = nil
	if after >= 0 {
		c.logFault = &after
	}
}

// LogSource for snapshot installs: reads another node's replica directly.
func (c *cluster) ReadLog(ctx context.Context, peer raft.ServerID, group string, from uint64, fn func(LogChunk) error) error {
	c.gmu.Lock()
	var g *Group
	for _, nd := range c.nodes {
		if nd.id == peer {
			g = nd.g
		}
	}
	fault := c.logFault
	c.gmu.Unlock()
	if g == nil {
		return fmt.Errorf("no open replica on %s", peer)
	}
	if fault == nil {
		return g.ServeLog(ctx, from, 4096, fn)
	}
	left := *fault
	return g.ServeLog(ctx, from, 1, func(ch LogChunk) error {
		if left == 0 {
			return errLogFault
		}
		left--
		return fn(ch)
	})
}

// newCluster starts n replicas bootstrapped together and waits for a
// leader.
func newCluster(t testing.TB, n int) *cluster {
	t.Helper()
	c := &cluster{t: t, logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), fsync: true}
	return c.start(n)
}

func (c *cluster) start(n int) *cluster {
	t := c.t
	var servers []raft.Server
	for i := range n {
		nd := c.addNode(fmt.Sprintf("n%d", i+1))
		servers = append(servers, raft.Server{ID: nd.id, Address: nd.addr, Suffrage: raft.Voter})
	}
	for _, nd := range c.nodes {
		c.open(nd, servers)
	}
	t.Cleanup(c.close)
	c.leader()
	return c
}

// addNode creates a broker (its stable store and transport), connected to
// the others, with no replica open.
func (c *cluster) addNode(id string) *node {
	c.t.Helper()
	dir := filepath.Join(c.t.TempDir(), id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		c.t.Fatal(err)
	}
	st, err := OpenStableStores(filepath.Join(dir, "raft.db"))
	if err != nil {
		c.t.Fatal(err)
	}
	nd := &node{id: raft.ServerID(id), addr: raft.ServerAddress(id), dir: dir, stable: st}
	_, nd.trans = raft.NewInmemTransport(nd.addr)
	c.nodes = append(c.nodes, nd)
	c.connect(nd)
	return nd
}

// connect links nd with every other node, both ways.
func (c *cluster) connect(nd *node) {
	for _, o := range c.nodes {
		if o != nd {
			nd.trans.Connect(o.addr, o.trans)
			o.trans.Connect(nd.addr, nd.trans)
		}
	}
}

// isolate cuts nd off from every other node, both ways.
func (c *cluster) isolate(nd *node) {
	nd.trans.DisconnectAll()
	for _, o := range c.nodes {
		if o != nd {
			o.trans.Disconnect(nd.addr)
		}
	}
}

func (c *cluster) open(nd *node, bootstrap []raft.Server) {
	c.t.Helper()
	if err := c.tryOpen(nd, bootstrap); err != nil {
		c.t.Fatal(err)
	}
}

// tryOpen opens nd's replica, returning OpenGroup's error.
func (c *cluster) tryOpen(nd *node, bootstrap []raft.Server) error {
	c.t.Helper()
	cache := 0
	if c.cacheOff {
		cache = -1
	}
	conf := testRaftConfig
	if c.raftConf != nil {
		conf = c.raftConf
	}
	g, err := OpenGroup(GroupConfig{
		Group: "topic/0", NodeID: nd.id, Dir: filepath.Join(nd.dir, "topic-0"),
		SegmentOptions: segment.Options{MaxSegmentBytes: cmp.Or(c.segBytes, 256<<10)},
		LogSource:      c,
		Transport:      copyingTransport{nd.trans}, Stable: nd.stable.For("topic/0"),
		Bootstrap: bootstrap, FsyncEveryAppend: c.fsync, FsyncInterval: 10 * time.Millisecond,
		Raft: conf(), Logger: c.logger, CacheEntries: cache, SoleReplica: c.sole, ReadLease: c.lease,
	})
	if err != nil {
		return err
	}
	c.gmu.Lock()
	nd.g = g
	c.gmu.Unlock()
	return nil
}

// stop closes nd's replica; restart reopens it from its directory on a
// fresh transport.
func (c *cluster) stop(nd *node) {
	c.t.Helper()
	if err := nd.g.Close(); err != nil {
		c.t.Fatal(err)
	}
	c.gmu.Lock()
	nd.g = nil
	c.gmu.Unlock()
}

func (c *cluster) restart(nd *node) {
	c.t.Helper()
	_, nd.trans = raft.NewInmemTransport(nd.addr)
	c.connect(nd)
	c.open(nd, nil)
}

func (c *cluster) close() {
	for _, nd := range c.nodes {
		if nd.g != nil {
			if err := nd.g.Close(); err != nil {
				c.t.Error(err)
			}
			c.gmu.Lock()
			nd.g = nil
			c.gmu.Unlock()
		}
		nd.stable.Close()
	}
}

func (c *cluster) open_() []*node {
	var out []*node
	for _, nd := range c.nodes {
		if nd.g != nil {
			out = append(out, nd)
		}
	}
	return out
}

// leader waits for exactly one open replica to lead, and returns it.
func (c *cluster) leader() *node {
	c.t.Helper()
	var l *node
	waitFor(c.t, 10*time.Second, "a leader", func() bool {
		l = nil
		for _, nd := range c.open_() {
			if nd.g.IsLeader() {
				if l != nil {
					return false
				}
				l = nd
			}
		}
		return l != nil
	})
	return l
}

// apply applies one batch through whichever replica leads, retrying
// retriable errors. It reports the offsets and whether the outcome was
// ever indeterminate (a retry may then duplicate it).
func (c *cluster) apply(ctx context.Context, b []byte) (base, last int64, err error) {
	for {
		l := c.leader()
		base, last, err = l.g.Apply(ctx, [][]byte{bytes.Clone(b)})
		var nl *NotLeaderError
		switch {
		case err == nil:
			return base, last, nil
		case errors.As(err, &nl), errors.Is(err, ErrTransferInProgress), errors.Is(err, ErrShutdown):
			continue
		case errors.Is(err, ErrIndeterminate) && ctx.Err() == nil:
			// A blind retry duplicates the batch if it did land (seen
			// under load: elections during applyMany): look first.
			if base, last, ok := c.landed(ctx, b); ok {
				return base, last, nil
			}
			continue
		}
		return 0, 0, err
	}
}

// landed reports where batch b is in the log, after an apply of it whose
// outcome was indeterminate: b is in the current leader's log below the
// end it has now, or never will be (a leader only appends what it is
// given); once that much is committed, the answer is final.
func (c *cluster) landed(ctx context.Context, b []byte) (base, last int64, ok bool) {
	want, err := record.Decode(b, record.DecodeOptions{})
	if err != nil || len(want) == 0 {
		return 0, 0, false
	}
	first := string(want[0].Value)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(10 * time.Second)
	l := c.leader()
	lg := l.g.Log()
	end := lg.NextOffset()
	for {
		if !l.g.IsLeader() {
			return 0, 0, false // leadership moved again: retry as before
		}
		if l.g.HighWatermark() >= end {
			for off := lg.StartOffset(); off < end; {
				data, err := lg.Read(off, end, 1<<20)
				if err != nil || len(data) == 0 {
					return 0, 0, false
				}
				for rest := data; len(rest) > 0; {
					batch, h, r, err := record.Next(rest)
					if err != nil {
						return 0, 0, false
					}
					recs, err := record.Decode(batch, record.DecodeOptions{})
					if err != nil {
						return 0, 0, false
					}
					for i, rec := range recs {
						if string(rec.Value) == first {
							return h.BaseOffset + int64(i), h.BaseOffset + int64(i+len(want)-1), true
						}
					}
					off, rest = h.NextOffset(), r
				}
			}
			return 0, 0, false
		}
		select {
		case <-ctx.Done():
			return 0, 0, false
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return 0, 0, false
		}
	}
}

// converge waits until every open replica's high watermark is hwm.
func (c *cluster) converge(hwm int64) {
	c.t.Helper()
	waitFor(c.t, 20*time.Second, fmt.Sprintf("every replica at high watermark %d", hwm), func() bool {
		for _, nd := range c.open_() {
			if nd.g.HighWatermark() != hwm {
				return false
			}
		}
		return true
	})
}

// readAll returns the log's batches below hwm, as stored.
func readAll(t testing.TB, l *segment.Log, hwm int64) []byte {
	t.Helper()
	var out []byte
	for off := l.StartOffset(); off < hwm; {
		b, err := l.Read(off, hwm, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 {
			t.Fatalf("no data at offset %d below %d", off, hwm)
		}
		for rest := b; len(rest) > 0; {
			_, h, r, err := record.Next(rest)
			if err != nil {
				t.Fatal(err)
			}
			off, rest = h.NextOffset(), r
		}
		out = append(out, b...)
	}
	return out
}

// sameLogs checks that every open replica holds the same batches below
// hwm, and returns them.
func (c *cluster) sameLogs(hwm int64) []byte {
	c.t.Helper()
	var want []byte
	for i, nd := range c.open_() {
		got := readAll(c.t, nd.g.Log(), hwm)
		if i == 0 {
			want = got
			continue
		}
		if !bytes.Equal(got, want) {
			c.t.Fatalf("replica %s's log differs below %d (%d bytes vs %d)", nd.id, hwm, len(got), len(want))
		}
	}
	return want
}

// values decodes the records of batches: value → offset. It fails on a
// value seen twice.
func values(t testing.TB, batches []byte) map[string]int64 {
	t.Helper()
	return decodeValues(t, batches, 0, true)
}

// decodeValues decodes batches that start at offset start and follow each
// other: value → offset; with noDups, a value seen twice fails.
func decodeValues(t testing.TB, batches []byte, start int64, noDups bool) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	next := start
	for rest := batches; len(rest) > 0; {
		b, h, r, err := record.Next(rest)
		if err != nil {
			t.Fatal(err)
		}
		if h.BaseOffset != next {
			t.Fatalf("batch at offset %d, want %d", h.BaseOffset, next)
		}
		recs, err := record.Decode(b, record.DecodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range recs {
			v := string(bytes.TrimRight(rec.Value, "."))
			if o, dup := out[v]; dup && noDups {
				t.Fatalf("value %s at offsets %d and %d", v, o, rec.Offset)
			}
			out[v] = rec.Offset
		}
		next, rest = h.NextOffset(), r
	}
	return out
}

// acked records acknowledged values and their offsets, concurrently.
type acked struct {
	mu sync.Mutex
	m  map[string]int64
}
