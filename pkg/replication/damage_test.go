package replication

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/stratalog/strata/pkg/segment"
)

func testLogger(t testing.TB) *zap.Logger { return zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)) }

// chanTransport is an inmem transport whose Consumer the test feeds.
type chanTransport struct {
	*raft.InmemTransport
	ch chan raft.RPC
}

func (c chanTransport) Consumer() <-chan raft.RPC { return c.ch }

// loadedRaftConfig is testRaftConfig with timeouts that survive writing
// 20 MB on a loaded 2-core machine without a leader change, still short
// enough that a damaged replica would win an election within a second.
func loadedRaftConfig() *raft.Config {
	c := testRaftConfig()
	c.HeartbeatTimeout = 400 * time.Millisecond
	c.ElectionTimeout = 400 * time.Millisecond
	c.LeaderLeaseTimeout = 300 * time.Millisecond
	return c
}

// Real sizes: 20 batches of 1,000 records of 1 KiB (about 1 MiB each, a
// producer's default batch), 20 MB in one active segment.
const (
	damageBatches  = 20
	damageRecords  = 1000
	damageValueLen = 1024
)

// writeRealSize applies damageBatches batches through the leader and
// returns the acknowledged values and their offsets.
func writeRealSize(t *testing.T, c *cluster, tag string) map[string]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	acks := map[string]int64{}
	for i := range damageBatches {
		bt := fmt.Sprintf("%s%d", tag, i)
		base, _, err := c.apply(ctx, testBatch(t, bt, damageRecords, damageValueLen))
		if err != nil {
			t.Fatal(err)
		}
		for r := range damageRecords {
			acks[fmt.Sprintf("%s-%d", bt, r)] = base + int64(r)
		}
	}
	return acks
}

// activeSegment returns the path of nd's last .log file.
func activeSegment(t *testing.T, nd *node) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(nd.dir, "topic-0", "*.log"))
	if err != nil || len(m) == 0 {
		t.Fatalf("no segment in %s: %v", nd.dir, err)
	}
	sort.Strings(m)
	return m[len(m)-1]
}

// flipMiddle flips one byte in the middle of the file and returns its size.
func flipMiddle(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	at := fi.Size() / 2
	var b [1]byte
	if _, err := f.ReadAt(b[:], at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x10
	if _, err := f.WriteAt(b[:], at); err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestDamagedFollowerAbstainsAndRefetches: records acknowledged by the
// leader and one follower F (the third replica H cut off) survive a bit
// flip in the middle of F's 20 MB active segment followed by the leader's
// death. Without abstaining, F's log is cut at the flip, F campaigns, H
// (which lacks everything) votes for it, and F leads without half the
// acknowledged records. With it, F neither asks for nor grants votes, so no
// leader is elected until the old leader returns; F then fetches the range
// back and votes again.
func TestDamagedFollowerAbstainsAndRefetches(t *testing.T) {
	c := &cluster{t: t, logger: testLogger(t), fsync: true, segBytes: 64 << 20, raftConf: loadedRaftConfig}
	c.start(3)
	h := c.nodes[2]
	if c.leader() == h {
		if err := h.g.TransferLeadership(context.Background(), "", ""); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "a leader other than H", func() bool {
			return c.nodes[0].g.IsLeader() || c.nodes[1].g.IsLeader()
		})
	}
	c.isolate(h)
	acks := writeRealSize(t, c, "a")
	// The leader may have changed under load; it is one of the two others.
	l := c.leader()
	f := c.nodes[0]
	if f == l {
		f = c.nodes[1]
	}
	hwm := l.g.HighWatermark()
	if hwm != damageBatches*damageRecords {
		t.Fatalf("high watermark %d, want %d", hwm, damageBatches*damageRecords)
	}
	waitFor(t, 20*time.Second, "F holds the whole log", func() bool { return f.g.HighWatermark() == hwm })
	before := f.g.Log().LastIndex()

	c.stop(f)
	seg := activeSegment(t, f)
	if size := flipMiddle(t, seg); size < 20_000_000 {
		t.Fatalf("active segment is %d bytes, want >= 20 MB", size)
	}
	c.stop(l)
	c.connect(h)
	c.restart(f)
	st := f.g.Status()
	if st.AbstainUntil != before || st.LastIndex >= before {
		t.Fatalf("damaged F: abstain until %d (want %d), last index %d", st.AbstainUntil, before, st.LastIndex)
	}
	lostFrom := f.g.Log().NextOffset()
	if lostFrom >= hwm || lostFrom == 0 {
		t.Fatalf("F's log ends at offset %d after the cut; the flip was not in the middle of %d", lostFrom, hwm)
	}
	t.Logf("F lost offsets %d..%d (raft indexes %d..%d) to the flip", lostFrom, hwm-1, st.LastIndex+1, before)

	// Raft's timers (200 ms here) would elect F within a few hundred ms.
	deadline := time.Now().Add(3 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	for time.Now().Before(deadline) {
		if f.g.IsLeader() || h.g.IsLeader() {
			t.Fatalf("a leader was elected without the records F lost (F leads: %v)", f.g.IsLeader())
		}
		<-tick.C
	}
	tick.Stop()

	c.restart(l)
	c.converge(hwm)
	// Abstaining ends when the log reaches the mark; the mark is cleared
	// (durably, quarantine first) right after.
	waitFor(t, 20*time.Second, "F stops abstaining and clears its mark", func() bool {
		return f.g.Status().AbstainUntil == 0 && f.g.Log().DamagedThrough() == 0
	})
	if q, _ := filepath.Glob(seg + ".damaged-*"); len(q) != 0 {
		t.Fatalf("quarantine kept after the refetch: %v", q)
	}
	log := values(t, c.sameLogs(hwm))
	checkAcked(t, log, acks)
	if len(log) != damageBatches*damageRecords {
		t.Fatalf("%d records, want %d", len(log), damageBatches*damageRecords)
	}
}

// TestDamagedSoleReplicaWaitsForOperator: the same flip on a group's only
// replica has no copy to fetch back: the group refuses to start rather than
// elect itself and reuse the lost offsets, and no byte is deleted (the log
// up to the flip plus the quarantined bytes are the old file, flip
// included). A torn tail is still cut and the group starts.
func TestDamagedSoleReplicaWaitsForOperator(t *testing.T) {
	c := &cluster{t: t, logger: testLogger(t), fsync: true, segBytes: 64 << 20, sole: true}
	c.start(1)
	writeRealSize(t, c, "a")
	nd := c.nodes[0]
	c.stop(nd)
	seg := activeSegment(t, nd)
	flipMiddle(t, seg)
	orig, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // and again: the refusal holds across restarts
		err = c.tryOpen(nd, nil)
		if !errors.Is(err, ErrNoHealthyCopy) {
			t.Fatalf("open of a damaged sole replica: %v, want ErrNoHealthyCopy", err)
		}
	}
	cut, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	q, _ := filepath.Glob(seg + ".damaged-*")
	if len(q) != 1 {
		t.Fatalf("quarantine files %v", q)
	}
	kept, err := os.ReadFile(q[0])
	if err != nil {
		t.Fatal(err)
	}
	if got := append(cut, kept...); string(got) != string(orig) {
		t.Fatalf("log (%d bytes) + quarantine (%d bytes) is not the old file (%d bytes)", len(cut), len(kept), len(orig))
	}
	if !strings.HasSuffix(q[0], fmt.Sprint(len(cut))) {
		t.Fatalf("quarantine %s does not name the cut position %d", q[0], len(cut))
	}
}

// TestTornTailStillCut: bytes of an unfinished write at the end of the
// active segment are cut, with no damage mark: the replica starts and
// votes.
func TestTornTailStillCut(t *testing.T) {
	c := &cluster{t: t, logger: testLogger(t), fsync: true, segBytes: 64 << 20, sole: true}
	c.start(1)
	writeRealSize(t, c, "a")
	nd := c.nodes[0]
	before := nd.g.Log().LastIndex()
	c.stop(nd)
	seg := activeSegment(t, nd)
	fi, err := os.Stat(seg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(seg, fi.Size()-100); err != nil {
		t.Fatal(err)
	}
	c.open(nd, nil)
	if r := nd.g.Log().RecoveryReport(); r == nil || nd.g.Log().Damage() != nil {
		t.Fatalf("torn tail: report %v, damage %+v", r, nd.g.Log().Damage())
	}
	if st := nd.g.Status(); st.AbstainUntil != 0 || st.LastIndex != before-1 {
		t.Fatalf("after a torn tail: abstain until %d, last index %d (want 0, %d)", st.AbstainUntil, st.LastIndex, before-1)
	}
	c.leader()
}

// TestAbstainTransportRefusesVotes: the filter answers vote and pre-vote
// requests "not granted" at the candidate's term and refuses TimeoutNow
// while abstaining, except votes for candidates whose log reaches the
// damage mark's (term, index); passes everything through otherwise, and
// asks for no votes itself.
func TestAbstainTransportRefusesVotes(t *testing.T) {
	_, im := raft.NewInmemTransport("a")
	inner := chanTransport{im, make(chan raft.RPC)}
	var abstain atomic.Bool
	abstain.Store(true)
	var markTerm atomic.Uint64
	markTerm.Store(4)
	tr := newAbstainTransport(inner, "a", abstain.Load, func() (uint64, uint64) { return 50, markTerm.Load() })
	defer tr.Close()
	var resp raft.RequestVoteResponse
	if err := tr.RequestVote("b", "b", &raft.RequestVoteRequest{Term: 3}, &resp); !errors.Is(err, errAbstaining) {
		t.Fatalf("outbound RequestVote while abstaining: %v", err)
	}
	if err := tr.RequestPreVote("b", "b", &raft.RequestPreVoteRequest{Term: 3}, &raft.RequestPreVoteResponse{}); !errors.Is(err, errAbstaining) {
		t.Fatalf("outbound RequestPreVote while abstaining: %v", err)
	}
	// deliver hands cmd to the filter as the inner transport would; if
	// passes, it plays raft and answers "raft".
	deliver := func(cmd any, passes bool) raft.RPCResponse {
		t.Helper()
		ch := make(chan raft.RPCResponse, 1)
		timeout := time.NewTimer(2 * time.Second)
		defer timeout.Stop()
		select {
		case inner.ch <- raft.RPC{Command: cmd, RespChan: ch}:
		case <-timeout.C:
			t.Fatal("filter did not take the RPC")
		}
		if passes {
			select {
			case rpc := <-tr.Consumer():
				rpc.Respond("raft", nil)
			case <-timeout.C:
				t.Fatalf("%T not passed on to raft", cmd)
			}
		}
		select {
		case r := <-ch:
			return r
		case <-timeout.C:
			t.Fatal("no answer")
		}
		return raft.RPCResponse{}
	}
	if r := deliver(&raft.RequestVoteRequest{Term: 7}, false); r.Error != nil || r.Response.(*raft.RequestVoteResponse).Granted || r.Response.(*raft.RequestVoteResponse).Term != 7 {
		t.Fatalf("vote while abstaining: %+v", r)
	}
	if r := deliver(&raft.RequestPreVoteRequest{Term: 7}, false); r.Error != nil || r.Response.(*raft.RequestPreVoteResponse).Granted {
		t.Fatalf("pre-vote while abstaining: %+v", r)
	}
	if r := deliver(&raft.TimeoutNowRequest{}, false); !errors.Is(r.Error, errAbstaining) {
		t.Fatalf("TimeoutNow while abstaining: %+v", r)
	}
	if r := deliver(&raft.AppendEntriesRequest{}, true); r.Response != "raft" {
		t.Fatalf("AppendEntries while abstaining not passed on: %+v", r)
	}
	// Candidates short of the mark (50 at term 4) are refused, those at
	// or past it go to raft, which applies its own checks.
	for _, c := range []struct {
		term, index uint64
		passes      bool
	}{{4, 49, false}, {3, 80, false}, {4, 50, true}, {4, 51, true}, {5, 10, true}} {
		req := &raft.RequestVoteRequest{Term: 7, LastLogTerm: c.term, LastLogIndex: c.index}
		r := deliver(req, c.passes)
		if c.passes && r.Response != "raft" || !c.passes && (r.Response.(*raft.RequestVoteResponse).Granted || r.Error != nil) {
			t.Fatalf("vote for a candidate at (%d, %d) with the mark at (4, 50): %+v", c.term, c.index, r)
		}
		pre := &raft.RequestPreVoteRequest{Term: 7, LastLogTerm: c.term, LastLogIndex: c.index}
		if r := deliver(pre, c.passes); c.passes != (r.Response == "raft") {
			t.Fatalf("pre-vote for a candidate at (%d, %d) with the mark at (4, 50): %+v", c.term, c.index, r)
		}
	}
	// An unknown mark term (an older version's mark) votes for no one.
	markTerm.Store(0)
	if r := deliver(&raft.RequestVoteRequest{Term: 7, LastLogTerm: 9, LastLogIndex: 900}, false); r.Response.(*raft.RequestVoteResponse).Granted {
		t.Fatalf("vote with an unknown mark term: %+v", r)
	}
	abstain.Store(false)
	if r := deliver(&raft.RequestVoteRequest{Term: 7}, true); r.Response != "raft" {
		t.Fatalf("vote after abstaining not passed on: %+v", r)
	}
}

// snapshotsOf lists nd's raft snapshots, newest first.
func snapshotsOf(t *testing.T, nd *node) (string, []*raft.SnapshotMeta) {
	t.Helper()
	dir := filepath.Join(nd.dir, "topic-0")
	snaps, err := raft.NewFileSnapshotStore(dir, 2, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	metas, err := snaps.List()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "snapshots"), metas
}

// TestCorruptNewestSnapshot: a bit flip in the newest snapshot's state
// next to an older snapshot. If the log still holds every entry after the
// older one, raft starts from it. If retention deleted the log's start
// past the older one, raft used to restore it anyway and panic replaying
// entries the log no longer held (a crash loop); now the newest is rebuilt
// from the log. Either way the replica opens, with every record.
func TestCorruptNewestSnapshot(t *testing.T) {
	for _, retention := range []bool{false, true} {
		t.Run(fmt.Sprintf("retention=%v", retention), func(t *testing.T) {
			c := &cluster{t: t, logger: testLogger(t), fsync: true, segBytes: 1 << 20, sole: true}
			c.start(1)
			nd := c.nodes[0]
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			acks := writeRealSize(t, c, "a")
			if _, err := nd.g.snapshot(ctx); err != nil {
				t.Fatal(err)
			}
			for v, o := range writeRealSize(t, c, "b") {
				acks[v] = o
			}
			if _, err := nd.g.snapshot(ctx); err != nil {
				t.Fatal(err)
			}
			start := int64(0)
			if retention {
				var err error
				if _, err = nd.g.SetLogStart(ctx, 25_000); err != nil {
					t.Fatal(err)
				}
				if start, err = nd.g.DeleteSegments(ctx); err != nil || start < 20_000 {
					t.Fatalf("DeleteSegments: start %d, %v", start, err)
				}
				for v, o := range acks {
					if o < start {
						delete(acks, v)
					}
				}
			}
			hwm := nd.g.HighWatermark()
			dir, metas := snapshotsOf(t, nd)
			if len(metas) != 2 {
				t.Fatalf("%d snapshots, want 2", len(metas))
			}
			if retention && metas[1].Index+1 >= nd.g.Log().FirstIndex() {
				t.Fatalf("older snapshot %d still covers the log from %d: the test needs it not to", metas[1].Index, nd.g.Log().FirstIndex())
			}
			c.stop(nd)
			state := filepath.Join(dir, metas[0].ID, "state.bin")
			b, err := os.ReadFile(state)
			if err != nil {
				t.Fatal(err)
			}
			b[10] ^= 0x01
			if err := os.WriteFile(state, b, 0o644); err != nil {
				t.Fatal(err)
			}
			c.open(nd, nil)
			c.leader()
			if got := nd.g.HighWatermark(); got != hwm {
				t.Fatalf("high watermark %d after the restart, want %d", got, hwm)
			}
			if got := nd.g.Log().StartOffset(); got != start {
				t.Fatalf("log start %d, want %d", got, start)
			}
			log := valuesFrom(t, readAll(t, nd.g.Log(), hwm), start)
			checkAcked(t, log, acks)
			if nd.g.AbstainUntil() != 0 {
				t.Fatal("abstaining after a snapshot was rebuilt")
			}
		})
	}
}

// valuesFrom is values for batches that start at offset start, with no
// check for a value seen twice.
func valuesFrom(t *testing.T, batches []byte, start int64) map[string]int64 {
	t.Helper()
	return decodeValues(t, batches, start, false)
}

// TestFollowerWithoutSnapshotsAbstainsUntilCopied: a follower whose log
// start retention deleted loses every snapshot. Raft cannot replay its log
// from index 1, so the log is discarded, but it held acknowledged entries:
// the index it had reached is marked first, and the follower abstains
// until the leader's snapshot install has copied the log back.
func TestFollowerWithoutSnapshotsAbstainsUntilCopied(t *testing.T) {
	c := &cluster{t: t, logger: testLogger(t), fsync: true, segBytes: 1 << 20}
	c.start(3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	acks := writeRealSize(t, c, "a")
	hwm := c.leader().g.HighWatermark()
	c.converge(hwm)
	var start int64
	for _, nd := range c.nodes {
		if nd.g.IsLeader() {
			if _, err := nd.g.SetLogStart(ctx, 10_000); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, nd := range c.nodes {
		waitFor(t, 10*time.Second, "log start applied", func() bool { return nd.g.LogStartOffset() == 10_000 })
		s, err := nd.g.DeleteSegments(ctx)
		if err != nil || s != 10_000 {
			t.Fatalf("%s: DeleteSegments: %d, %v", nd.id, s, err)
		}
		start = s
	}
	var f *node
	for _, nd := range c.nodes {
		if !nd.g.IsLeader() {
			f = nd
		}
	}
	before := f.g.Log().LastIndex()
	c.stop(f)
	dir, _ := snapshotsOf(t, f)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Restarted cut off, so that the check below sees it before the copy.
	_, f.trans = raft.NewInmemTransport(f.addr)
	c.open(f, nil)
	if got, last := f.g.AbstainUntil(), f.g.Log().LastIndex(); got != before || last != 0 {
		t.Fatalf("abstains until %d with last index %d; want %d, 0", got, last, before)
	}
	c.connect(f)
	c.converge(hwm)
	// The install's adoption of the copied log clears the mark: no write
	// follows to do it.
	waitFor(t, 20*time.Second, "F stops abstaining and clears its mark", func() bool {
		return f.g.AbstainUntil() == 0 && f.g.Log().DamagedThrough() == 0
	})
	for v, o := range acks {
		if o < start {
			delete(acks, v)
		}
	}
	checkAcked(t, valuesFrom(t, readAll(t, f.g.Log(), hwm), start), acks)
}

// TestVerifyDir: the offline check of a replica's directory finds a sound
// log and snapshots ok, and a snapshot whose state fails its CRC damaged.
func TestVerifyDir(t *testing.T) {
	c := &cluster{t: t, logger: testLogger(t), fsync: true, segBytes: 4 << 20, sole: true}
	c.start(1)
	nd := c.nodes[0]
	writeRealSize(t, c, "a")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := nd.g.snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	c.stop(nd)
	dir := filepath.Join(nd.dir, "topic-0")
	checks, err := VerifyDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, ch := range checks {
		if ch.Status != segment.CheckOK {
			t.Fatalf("sound replica: %+v", ch)
		}
		kinds[ch.Kind]++
	}
	if kinds["segment"] < 5 || kinds["index"] < 4 || kinds["snapshot"] != 1 {
		t.Fatalf("checked %v", kinds)
	}
	snapDir, metas := snapshotsOf(t, nd)
	state := filepath.Join(snapDir, metas[0].ID, "state.bin")
	b, _ := os.ReadFile(state)
	b[20] ^= 1
	if err := os.WriteFile(state, b, 0o644); err != nil {
		t.Fatal(err)
	}
	checks, _ = VerifyDir(dir)
	for _, ch := range checks {
		if ch.Kind == "snapshot" && (ch.Status != segment.CheckDamaged || !strings.Contains(ch.Detail, "CRC")) {
			t.Fatalf("corrupt snapshot: %+v", ch)
		}
	}
}

// TestRepairDamageInClosedSegment: a flipped byte in a closed segment of a
// follower, and one in the leader's, found by Scrub, are rewritten from
// another replica's copy of the entry; the logs are then whole and equal.
func TestRepairDamageInClosedSegment(t *testing.T) {
	c := &cluster{t: t, logger: testLogger(t), fsync: true, segBytes: 1 << 20, raftConf: loadedRaftConfig}
	c.start(3)
	acks := writeRealSize(t, c, "a")
	l := c.leader()
	hwm := l.g.HighWatermark()
	c.converge(hwm)
	var f *node
	for _, nd := range c.nodes {
		if nd != l {
			f = nd
		}
	}
	for _, nd := range []*node{f, l} {
		segs := nd.g.Log().Segments()
		flipMiddle(t, segmentFile(nd, segs[len(segs)/2].BaseOffset))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		res, err := nd.g.Log().Scrub(ctx, segment.ScrubOptions{})
		if err != nil || len(res.Damage) != 1 {
			t.Fatalf("%s: scrub %+v, %v", nd.id, res, err)
		}
		from, err := nd.g.RepairDamage(ctx, res.Damage[0])
		if err != nil || from == nd.id || from == "" {
			t.Fatalf("%s: repair from %q: %v", nd.id, from, err)
		}
		if res, err := nd.g.Log().Scrub(ctx, segment.ScrubOptions{}); err != nil || len(res.Damage) != 0 {
			t.Fatalf("%s: after the repair: %+v, %v", nd.id, res, err)
		}
		cancel()
	}
	checkAcked(t, values(t, c.sameLogs(hwm)), acks)
}

// segmentFile is the path of nd's segment with base offset base.
func segmentFile(nd *node, base int64) string {
	return filepath.Join(nd.dir, "topic-0", fmt.Sprintf("%020d.log", base))
}
