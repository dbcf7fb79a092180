package client

// GroupConsumer against the fake coordinator (fakegroup_test.go).

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
)

// produceTo writes n records to each of partitions of topic, values
// "p/i".
func produceTo(t *testing.T, c *Client, topic string, n int, partitions ...int32) {
	t.Helper()
	p := c.NewProducer(RecordPartitioner(ManualPartitioner()))
	defer p.Close(testCtx(t))
	var recs []*Record
	for _, part := range partitions {
		for i := range n {
			recs = append(recs, &Record{Topic: topic, Partition: part, Value: fmt.Appendf(nil, "%d/%d", part, i)})
		}
	}
	if err := p.ProduceSync(testCtx(t), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func newGroupConsumer(t *testing.T, c *Client, group string, opts ...GroupOpt) *GroupConsumer {
	t.Helper()
	opts = append([]GroupOpt{Topics("t"), FetchOpts(FetchMaxWait(20 * time.Millisecond))}, opts...)
	gc, err := c.NewGroupConsumer(group, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gc.Close(context.Background()) })
	return gc
}

// pollUntil polls until done says so with everything polled, failing
// after 10 s.
func pollUntil(t *testing.T, gc *GroupConsumer, what string, done func(all []*Record) bool) []*Record {
	t.Helper()
	var all []*Record
	deadline := time.Now().Add(10 * time.Second)
	for !done(all) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s; polled %d records, assignment %v", what, len(all), gc.Assignment())
		}
		recs, err := gc.Poll(testCtx(t))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		all = append(all, recs...)
	}
	return all
}

// eventually waits for cond, failing after 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(5 * time.Millisecond) // the state is another goroutine's; nothing to wait on
	}
}

func offsetsOf(recs []*Record) map[TopicPartition][]int64 {
	out := make(map[TopicPartition][]int64)
	for _, r := range recs {
		tp := TopicPartition{r.Topic, r.Partition}
		out[tp] = append(out[tp], r.Offset)
	}
	return out
}

func TestGroupJoinConsumeCommitLeave(t *testing.T) {
	f := startFake(t)
	c := newTestClient(t, f.addr)
	createTopic(t, c, "t", 3)
	produceTo(t, c, "t", 5, 0, 1, 2)

	var assigned []TopicPartition
	gc := newGroupConsumer(t, c, "g", OnAssigned(func(_ context.Context, parts []TopicPartition) {
		assigned = append(assigned, parts...)
	}))
	recs := pollUntil(t, gc, "all 15 records", func(all []*Record) bool { return len(all) == 15 })
	if got := fmt.Sprint(assigned); got != "[t/0 t/1 t/2]" {
		t.Errorf("assigned %s", got)
	}
	for tp, offs := range offsetsOf(recs) {
		if !slices.Equal(offs, []int64{0, 1, 2, 3, 4}) {
			t.Errorf("%s: offsets %v", tp, offs)
		}
	}
	if id, epoch := gc.Member(); id == "" || epoch <= 0 {
		t.Errorf("member %q epoch %d", id, epoch)
	}
	if err := gc.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	want := map[TopicPartition]int64{{"t", 0}: 5, {"t", 1}: 5, {"t", 2}: 5}
	if got := f.committed("g"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("committed after Close: %v, want %v", got, want)
	}
	if m := f.members("g"); len(m) != 0 {
		t.Errorf("members after Close: %v", m)
	}
	if _, err := gc.Poll(testCtx(t)); !errors.Is(err, ErrClosed) {
		t.Errorf("Poll after Close: %v", err)
	}

	// A new member starts where the group committed.
	produceTo(t, c, "t", 1, 1)
	gc2 := newGroupConsumer(t, c, "g")
	recs = pollUntil(t, gc2, "the new record", func(all []*Record) bool { return len(all) == 1 })
	if recs[0].Partition != 1 || recs[0].Offset != 5 {
		t.Errorf("second member read %s at %d", TopicPartition{recs[0].Topic, recs[0].Partition}, recs[0].Offset)
	}
}

// Two members: the second joins while the first consumes. Every
// partition moved is committed by the first and released before the
// second is given it, and the two read every record exactly once.
func TestGroupRebalanceRevokesBeforeRelease(t *testing.T) {
	f := startFake(t)
	c := newTestClient(t, f.addr)
	createTopic(t, c, "t", 4)
	produceTo(t, c, "t", 10, 0, 1, 2, 3)

	var revoked []TopicPartition
	a := newGroupConsumer(t, c, "g", OnRevoked(func(_ context.Context, parts []TopicPartition) { revoked = append(revoked, parts...) }))
	got := pollUntil(t, a, "a reads everything", func(all []*Record) bool { return len(all) == 40 })

	// b joins; a keeps polling (in this goroutine) while b polls in its own.
	b := newGroupConsumer(t, c, "g")
	var (
		bMu  sync.Mutex
		bGot []*Record
	)
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			recs, err := b.Poll(context.Background())
			if err != nil {
				done <- err
				return
			}
			bMu.Lock()
			bGot = append(bGot, recs...)
			bMu.Unlock()
		}
	}()
	pollUntil(t, a, "a gives two partitions away", func([]*Record) bool { return len(a.Assignment()) == 2 })
	produceTo(t, c, "t", 5, 0, 1, 2, 3)
	got = append(got, pollUntil(t, a, "a reads its new records", func(all []*Record) bool { return len(all) == 10 })...)
	// At least 10: a record read twice must fail the exactly-once check
	// below, saying which, not this wait (seen once in CI, undiagnosed).
	eventually(t, "b reads its new records", func() bool { bMu.Lock(); defer bMu.Unlock(); return len(bGot) >= 10 })
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got = append(got, bGot...)

	if fmt.Sprint(revoked) != fmt.Sprint(b.Assignment()) || len(revoked) != 2 {
		t.Errorf("a revoked %v, b owns %v", revoked, b.Assignment())
	}
	seen := make(map[string]bool)
	for _, r := range got {
		k := fmt.Sprintf("%d/%d", r.Partition, r.Offset)
		if seen[k] {
			t.Errorf("record %s read twice", k)
		}
		seen[k] = true
	}
	if len(seen) != 60 {
		t.Errorf("read %d distinct records, want 60", len(seen))
	}
	// The coordinator saw, per moved partition: a's commit, a's release,
	// then the partition given to b.
	aID, _ := a.Member()
	for _, tp := range revoked {
		var order []string
		for _, e := range f.events() {
			if e.tp == tp && (e.kind == "commit" && e.member == aID || e.kind == "release" || e.kind == "give") {
				order = append(order, e.kind)
			}
		}
		if i := slices.Index(order, "release"); i < 1 || i+1 >= len(order) || order[i-1] != "commit" || order[i+1] != "give" {
			t.Errorf("%s: events %v; want a commit, the release, then give", tp, order)
		}
	}
}

// The fake coordinator withholds a partition from its new owner while
// the old owner was given it but has not yet reported owning it: the old
// owner may be reading it already (TestGroupRebalanceRevokesBeforeRelease
// read partitions twice, about 1 run in 20, when the second member joined
// before the first member's heartbeat after its assignment); and, once
// revoked, until a report made after the revoke lacks it (a heartbeat
// sent before the member took the partition does not release it: seen
// about 1 run in 500 under -race).
func TestFakeGroupWithholdsGivenNotYetReported(t *testing.T) {
	f := startFake(t)
	c := newTestClient(t, f.addr)
	createTopic(t, c, "t", 4)
	hb := func(id string, epoch int32, owned ...int32) *v1.GroupHeartbeatResponse {
		t.Helper()
		req := &v1.GroupHeartbeatRequest{Group: "g", MemberId: id, MemberEpoch: epoch, Topics: []string{"t"}}
		if len(owned) > 0 {
			req.Owned = []*v1.TopicPartitions{{Topic: "t", Partitions: owned}}
		}
		resp, err := f.GroupHeartbeat(testCtx(t), req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	assigned := func(r *v1.GroupHeartbeatResponse) string { return fmt.Sprint(fromTopics(r.Assignment)) }

	a := hb("", 0)
	if got := assigned(a); got != "[t/0 t/1 t/2 t/3]" {
		t.Fatalf("first member given %s", got)
	}
	b := hb("", 0) // a has not heartbeated since: t/2 and t/3 are still a's
	if got := assigned(b); got != "[]" {
		t.Errorf("second member given %s while the first may read them", got)
	}
	// A heartbeat a made before taking its partitions (owned unchanged:
	// nothing) learns of the revoke; a may be reading them all the same.
	stale, err := f.GroupHeartbeat(testCtx(t), &v1.GroupHeartbeatRequest{Group: "g", MemberId: a.MemberId, MemberEpoch: a.MemberEpoch, Topics: []string{"t"}, OwnedUnchanged: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := assigned(stale); got != "[t/0 t/1]" {
		t.Errorf("first member given %s after the join", got)
	}
	if got := assigned(hb(b.MemberId, b.MemberEpoch)); got != "[]" {
		t.Errorf("second member given %s after a report made before the revoke", got)
	}
	a = hb(a.MemberId, stale.MemberEpoch, 0, 1, 2, 3)
	if got := assigned(a); got != "[t/0 t/1]" {
		t.Errorf("first member given %s after reporting its partitions", got)
	}
	if got := assigned(hb(b.MemberId, b.MemberEpoch)); got != "[]" {
		t.Errorf("second member given %s before the first released them", got)
	}
	hb(a.MemberId, a.MemberEpoch, 0, 1)
	if got := assigned(hb(b.MemberId, b.MemberEpoch)); got != "[t/2 t/3]" {
		t.Errorf("second member given %s after the release", got)
	}
}

// A fenced member drops its partitions (OnLost, no commit), rejoins and
// resumes from the committed offsets.
func TestGroupFencedRejoins(t *testing.T) {
	f := startFake(t)
	c := newTestClient(t, f.addr)
	createTopic(t, c, "t", 2)
	produceTo(t, c, "t", 3, 0, 1)

	var lost, assigned [][]TopicPartition
	gc := newGroupConsumer(t, c, "g", AutoCommitInterval(time.Hour),
		OnLost(func(_ context.Context, p []TopicPartition) { lost = append(lost, p) }),
		OnAssigned(func(_ context.Context, p []TopicPartition) { assigned = append(assigned, p) }))
	pollUntil(t, gc, "first records", func(all []*Record) bool { return len(all) == 6 })
	if err := gc.CommitSync(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	id, _ := gc.Member()
	f.fence("g", id)
	pollUntil(t, gc, "rejoined", func([]*Record) bool { return len(lost) == 1 && len(gc.Assignment()) == 2 })
	produceTo(t, c, "t", 1, 0, 1)
	recs := pollUntil(t, gc, "new records", func(all []*Record) bool { return len(all) == 2 })
	if fmt.Sprint(lost) != "[[t/0 t/1]]" || len(assigned) != 2 {
		t.Errorf("lost %v, assigned %v", lost, assigned)
	}
	for _, r := range recs {
		if r.Offset != 3 {
			t.Errorf("after rejoin read %d/%d, want offset 3", r.Partition, r.Offset)
		}
	}
	if id2, epoch := gc.Member(); id2 != id || epoch <= 0 {
		t.Errorf("after a stale epoch: member %q epoch %d, want %q again", id2, epoch, id)
	}

	// A member the coordinator forgot joins anew, under a new id.
	f.expire("g", id)
	pollUntil(t, gc, "joined anew", func([]*Record) bool { return len(lost) == 2 && len(gc.Assignment()) == 2 })
	if id3, _ := gc.Member(); id3 == id {
		t.Errorf("after UNKNOWN_MEMBER the member id stayed %q", id3)
	}
}

// Auto-commit commits what the previous Poll returned, not the last: a
// member that dies while processing replays those records.
func TestGroupAutoCommitAtLeastOnce(t *testing.T) {
	f := startFake(t)
	c := newTestClient(t, f.addr)
	createTopic(t, c, "t", 1)
	produceTo(t, c, "t", 5, 0)

	gc := newGroupConsumer(t, c, "g", AutoCommitInterval(5*time.Millisecond))
	pollUntil(t, gc, "five records", func(all []*Record) bool { return len(all) == 5 })
	// Processing those five: several auto-commits pass.
	eventually(t, "a commit", func() bool { _, ok := f.committed("g")[TopicPartition{"t", 0}]; return ok })
	time.Sleep(30 * time.Millisecond) // several auto-commit intervals; none may commit the five yet
	if got := f.committed("g")[TopicPartition{"t", 0}]; got != 0 {
		t.Fatalf("committed %d while the records were being processed, want 0", got)
	}
	// The next Poll says they are processed.
	produceTo(t, c, "t", 2, 0)
	pollUntil(t, gc, "two more", func(all []*Record) bool { return len(all) == 2 })
	eventually(t, "commit of 5", func() bool { return f.committed("g")[TopicPartition{"t", 0}] == 5 })

	// Crash (no Close): the two records come again to the next member.
	gc.abort()
	gc2 := newGroupConsumer(t, c, "g")
	f.expire("g", func() string { id, _ := gc.Member(); return id }())
	recs := pollUntil(t, gc2, "replay", func(all []*Record) bool { return len(all) == 2 })
	if recs[0].Offset != 5 {
		t.Errorf("replay starts at %d, want 5", recs[0].Offset)
	}
}

func TestGroupManualCommit(t *testing.T) {
	f := startFake(t)
	c := newTestClient(t, f.addr)
	createTopic(t, c, "t", 1)
	produceTo(t, c, "t", 6, 0)
	tp := TopicPartition{"t", 0}

	gc := newGroupConsumer(t, c, "g", DisableAutoCommit())
	recs := pollUntil(t, gc, "six records", func(all []*Record) bool { return len(all) == 6 })
	if err := gc.CommitRecords(testCtx(t), recs[1]); err != nil {
		t.Fatal(err)
	}
	if got := f.committed("g")[tp]; got != 2 {
		t.Fatalf("CommitRecords: committed %d, want 2", got)
	}
	var order []int64
	done := make(chan struct{})
	gc.CommitAsync(func(offs map[TopicPartition]int64, err error) {
		if err != nil {
			t.Error(err)
		}
		order = append(order, offs[tp])
	})
	gc.CommitAsync(func(offs map[TopicPartition]int64, err error) { order = append(order, -offs[tp]); close(done) })
	<-done
	if fmt.Sprint(order) != "[6 -6]" || f.committed("g")[tp] != 6 {
		t.Errorf("CommitAsync callbacks %v, committed %d", order, f.committed("g")[tp])
	}
	if err := gc.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}

	// Marks: only what is marked is committed, on Close too.
	gc2 := newGroupConsumer(t, c, "g", AutoCommitMarks())
	produceTo(t, c, "t", 4, 0)
	recs = pollUntil(t, gc2, "four records", func(all []*Record) bool { return len(all) == 4 })
	gc2.MarkRecords(recs[0], recs[1])
	if err := gc2.CommitSync(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if got := f.committed("g")[tp]; got != 8 {
		t.Errorf("marked 6 and 7: committed %d, want 8", got)
	}
	gc2.MarkRecords(recs[2])
	if err := gc2.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if got := f.committed("g")[tp]; got != 9 {
		t.Errorf("after Close with 8 marked: committed %d, want 9", got)
	}
}

func TestGroupPauseResumeSeek(t *testing.T) {
	f := startFake(t)
	c := newTestClient(t, f.addr)
	createTopic(t, c, "t", 2)
	produceTo(t, c, "t", 5, 0, 1)
	p0, p1 := TopicPartition{"t", 0}, TopicPartition{"t", 1}

	var gc *GroupConsumer
	gc = newGroupConsumer(t, c, "g", OnAssigned(func(context.Context, []TopicPartition) {
		if err := gc.Seek("t", 1, 3); err != nil {
			t.Error(err)
		}
	}))
	gc.Pause(p0)
	recs := pollUntil(t, gc, "p1 from 3", func(all []*Record) bool { return len(all) == 2 })
	if got := fmt.Sprint(offsetsOf(recs)); got != fmt.Sprint(map[TopicPartition][]int64{p1: {3, 4}}) {
		t.Errorf("paused t/0 and seek t/1 to 3: read %s", got)
	}
	gc.Resume(p0)
	recs = pollUntil(t, gc, "p0", func(all []*Record) bool { return len(all) == 5 })
	if got := fmt.Sprint(offsetsOf(recs)); got != fmt.Sprint(map[TopicPartition][]int64{p0: {0, 1, 2, 3, 4}}) {
		t.Errorf("resumed t/0: read %s", got)
	}
	if err := gc.Seek("t", 0, 1); err != nil {
		t.Fatal(err)
	}
	recs = pollUntil(t, gc, "p0 again", func(all []*Record) bool { return len(all) == 4 })
	if recs[0].Offset != 1 {
		t.Errorf("after Seek(t/0, 1) read from %d", recs[0].Offset)
	}
	if err := gc.Seek("t", 7, 0); err == nil {
		t.Error("Seek of a partition not owned: no error")
	}
}

// A static member leaves with epoch -2 and gets its partitions back.
func TestGroupStaticMemberLeavesAndReturns(t *testing.T) {
	f := startFake(t)
	c := newTestClient(t, f.addr)
	createTopic(t, c, "t", 2)
	produceTo(t, c, "t", 1, 0, 1)

	a := newGroupConsumer(t, c, "g", InstanceID("a"))
	b := newGroupConsumer(t, c, "g", InstanceID("b"))
	pollUntil(t, a, "a owns one", func([]*Record) bool { return len(a.Assignment()) == 1 })
	pollUntil(t, b, "b owns one", func([]*Record) bool { return len(b.Assignment()) == 1 })
	aOwned := a.Assignment()
	if err := a.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	var leaves []int64
	for _, e := range f.events() {
		if e.kind == "leave" {
			leaves = append(leaves, e.offset)
		}
	}
	if fmt.Sprint(leaves) != "[-2]" {
		t.Errorf("leave epochs %v, want [-2]", leaves)
	}
	a2 := newGroupConsumer(t, c, "g", InstanceID("a"))
	pollUntil(t, a2, "a back", func([]*Record) bool { return len(a2.Assignment()) == 1 })
	if fmt.Sprint(a2.Assignment()) != fmt.Sprint(aOwned) {
		t.Errorf("a came back to %v, had %v", a2.Assignment(), aOwned)
	}
}

// NOT_COORDINATOR and unavailability are retried after finding the
// coordinator again.
func TestGroupCoordinatorMoves(t *testing.T) {
	f := startFake(t)
	c := newTestClient(t, f.addr)
	createTopic(t, c, "t", 1)
	produceTo(t, c, "t", 2, 0)
	f.failNext("GroupHeartbeat", v1.ErrorCode_ERROR_CODE_NOT_COORDINATOR, v1.ErrorCode_ERROR_CODE_UNAVAILABLE)
	f.failNext("FetchOffsets", v1.ErrorCode_ERROR_CODE_NOT_COORDINATOR)
	f.failNext("CommitOffsets", v1.ErrorCode_ERROR_CODE_NOT_COORDINATOR)
	gc := newGroupConsumer(t, c, "g", DisableAutoCommit())
	pollUntil(t, gc, "records", func(all []*Record) bool { return len(all) == 2 })
	if err := gc.CommitSync(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if n := f.callCount("FindCoordinator"); n < 4 {
		t.Errorf("FindCoordinator called %d times after 4 retriable errors", n)
	}
	if got := f.committed("g")[TopicPartition{"t", 0}]; got != 2 {
		t.Errorf("committed %d", got)
	}
}

// An error no retry helps reaches Poll; the member keeps trying.
func TestGroupHeartbeatErrorReachesPoll(t *testing.T) {
	f := startFake(t)
	c := newTestClient(t, f.addr)
	createTopic(t, c, "t", 1)
	f.failNext("GroupHeartbeat", v1.ErrorCode_ERROR_CODE_INVALID_REQUEST)
	gc := newGroupConsumer(t, c, "g")
	var err error
	eventually(t, "the error", func() bool { _, err = gc.Poll(testCtx(t)); return err != nil })
	if !errors.Is(err, apierr.ErrInvalidRequest) {
		t.Fatalf("Poll: %v", err)
	}
	pollUntil(t, gc, "joined after all", func([]*Record) bool { return len(gc.Assignment()) == 1 })
}

func TestGroupAdmin(t *testing.T) {
	f := startFake(t)
	c := newTestClient(t, f.addr)
	createTopic(t, c, "t", 2)
	produceTo(t, c, "t", 3, 0, 1)
	a := c.Admin()
	ctx := testCtx(t)

	gc := newGroupConsumer(t, c, "g")
	pollUntil(t, gc, "records", func(all []*Record) bool { return len(all) == 6 })
	if err := gc.CommitSync(ctx); err != nil {
		t.Fatal(err)
	}
	groups, err := a.ListGroups(ctx)
	if err != nil || len(groups) != 1 || groups[0].Group != "g" || groups[0].Members != 1 {
		t.Fatalf("ListGroups: %v %v", groups, err)
	}
	d, err := a.DescribeGroup(ctx, "g")
	if err != nil || len(d.Members) != 1 || len(d.Partitions) != 2 || d.TotalLag != 0 {
		t.Fatalf("DescribeGroup: %v %v", d, err)
	}
	if err := a.DeleteGroup(ctx, "g"); !errors.Is(err, apierr.ErrGroupNotEmpty) {
		t.Errorf("DeleteGroup with a member: %v", err)
	}
	if err := a.CommitOffsets(ctx, "g", map[TopicPartition]int64{{"t", 0}: 0}); !errors.Is(err, apierr.ErrGroupNotEmpty) {
		t.Errorf("admin commit with a member: %v", err)
	}
	if err := gc.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.CommitOffsets(ctx, "g", map[TopicPartition]int64{{"t", 0}: 1}); err != nil {
		t.Fatal(err)
	}
	offs, err := a.FetchOffsets(ctx, "g")
	if err != nil || len(offs) != 2 || offs[0].Offset != 1 || offs[1].Offset != 3 {
		t.Fatalf("FetchOffsets: %v %v", offs, err)
	}
	if err := a.DeleteGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.DescribeGroup(ctx, "g"); !errors.Is(err, apierr.ErrUnknownGroup) {
		t.Errorf("DescribeGroup of a deleted group: %v", err)
	}
}

func TestGroupOptionValidation(t *testing.T) {
	f := startFake(t)
	c := newTestClient(t, f.addr)
	for _, bad := range [][]GroupOpt{
		nil,
		{Topics("a"), TopicRegex("b")},
		{TopicRegex("(")},
		{Topics("a"), FetchOpts(StartAt(Latest()))},
		{Topics("a"), FetchOpts(Partitions(1))},
		{Topics("a"), AutoCommitInterval(0)},
	} {
		if _, err := c.NewGroupConsumer("g", bad...); err == nil {
			t.Errorf("%d options: no error", len(bad))
		}
	}
}

// A member cut off from its coordinator for a session timeout drops its
// partitions (they belong to others by then) and joins again.
func TestGroupSessionLostWithoutCoordinator(t *testing.T) {
	f := startFake(t)
	c := newTestClient(t, f.addr)
	createTopic(t, c, "t", 1)
	var mu sync.Mutex
	var lost []TopicPartition
	gc := newGroupConsumer(t, c, "g", SessionTimeout(200*time.Millisecond),
		OnLost(func(_ context.Context, p []TopicPartition) { mu.Lock(); lost = append(lost, p...); mu.Unlock() }))
	pollUntil(t, gc, "joined", func([]*Record) bool { return len(gc.Assignment()) == 1 })
	id, _ := gc.Member()
	unavailable := make([]v1.ErrorCode, 60) // several session timeouts of backoffs
	for i := range unavailable {
		unavailable[i] = v1.ErrorCode_ERROR_CODE_UNAVAILABLE
	}
	f.failNext("GroupHeartbeat", unavailable...)
	pollUntil(t, gc, "partitions lost", func([]*Record) bool { mu.Lock(); defer mu.Unlock(); return len(lost) == 1 })
	f.expire("g", id) // what the coordinator did meanwhile
	pollUntil(t, gc, "joined again", func([]*Record) bool { return len(gc.Assignment()) == 1 })
	if id2, _ := gc.Member(); id2 == id || id2 == "" {
		t.Errorf("member %q after losing the session, was %q", id2, id)
	}
}

func TestGroupTopicRegex(t *testing.T) {
	f := startFake(t)
	c := newTestClient(t, f.addr)
	createTopic(t, c, "t1", 1)
	createTopic(t, c, "t2", 2)
	createTopic(t, c, "x", 1)
	gc, err := c.NewGroupConsumer("g", TopicRegex("t[0-9]"), FetchOpts(FetchMaxWait(20*time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close(testCtx(t))
	pollUntil(t, gc, "assigned", func([]*Record) bool { return len(gc.Assignment()) == 3 })
	if got := fmt.Sprint(gc.Assignment()); got != "[t1/0 t2/0 t2/1]" {
		t.Errorf("regex assignment %s", got)
	}
}

// A commit that crosses an epoch bump (the heartbeat that brought the new
// epoch answered while the commit was out) is fenced, and sent again with
// the new epoch.
func TestGroupCommitRetriesAfterEpochBump(t *testing.T) {
	f := startFake(t)
	c := newTestClient(t, f.addr)
	createTopic(t, c, "t", 1)
	produceTo(t, c, "t", 3, 0)
	gc := newGroupConsumer(t, c, "g", DisableAutoCommit())
	pollUntil(t, gc, "records", func(all []*Record) bool { return len(all) == 3 })

	var epochs []int32
	f.mu.Lock()
	f.groups.beforeCommit = func(g *fakeGroup, r *v1.CommitOffsetsRequest) {
		epochs = append(epochs, r.MemberEpoch)
		if len(epochs) == 1 {
			g.epoch++
			g.members[r.MemberId].epoch = g.epoch
			gc.mu.Lock()
			gc.mu.m.epoch = g.epoch // the heartbeat reply that crossed the commit
			gc.mu.Unlock()
		}
	}
	f.mu.Unlock()
	if err := gc.CommitSync(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(epochs) != 2 || epochs[1] != epochs[0]+1 || f.group("g").offsets[TopicPartition{"t", 0}] != 3 {
		t.Errorf("commit epochs %v, committed %v", epochs, f.group("g").offsets)
	}
}

// Close stops a Poll in progress (a long fetch) and then leaves.
func TestGroupCloseStopsPoll(t *testing.T) {
	f := startFake(t)
	c := newTestClient(t, f.addr)
	createTopic(t, c, "t", 1)
	gc, err := c.NewGroupConsumer("g", Topics("t"), FetchOpts(FetchMaxWait(time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		for {
			if _, err := gc.Poll(testCtx(t)); err != nil {
				errc <- err
				return
			}
		}
	}()
	eventually(t, "a fetch in flight", func() bool { return f.callCount("Fetch") > 0 })
	if err := gc.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("Poll during Close: %v", err)
	}
	if m := f.members("g"); len(m) != 0 {
		t.Errorf("members after Close: %v", m)
	}
}
