package client

// GroupConsumer against real in-process brokers and their coordinator.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/brokertest"
	"github.com/stratalog/strata/pkg/apierr"
	"go.uber.org/zap/zaptest"
)

// poller polls a group consumer on its own goroutine until stopped,
// collecting the records. Errors are logged, not fatal: the consumer
// carries on after them.
type poller struct {
	gc   *GroupConsumer
	mu   sync.Mutex
	recs []*Record
	stop chan struct{}
	done chan struct{}
	halt func() []*Record // stops the poll loop (once) and returns what it read
}

func startPoller(t *testing.T, gc *GroupConsumer) *poller {
	p := &poller{gc: gc, stop: make(chan struct{}), done: make(chan struct{})}
	var once sync.Once
	p.halt = func() []*Record {
		once.Do(func() { close(p.stop) })
		<-p.done
		return p.read()
	}
	t.Cleanup(func() { p.halt() })
	go func() {
		defer close(p.done)
		for {
			select {
			case <-p.stop:
				return
			default:
			}
			recs, err := gc.Poll(context.Background())
			if errors.Is(err, ErrClosed) {
				return
			}
			if err != nil {
				t.Logf("poll: %v", err)
			}
			p.mu.Lock()
			p.recs = append(p.recs, recs...)
			p.mu.Unlock()
		}
	}()
	return p
}

// read returns what the poller has read so far.
func (p *poller) read() []*Record {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.recs)
}

func (p *poller) count() int { return len(p.read()) }

func TestBrokerGroup(t *testing.T) {
	addr := brokertest.Start(t)
	c := newTestClient(t, addr, RetryTimeout(20*time.Second))
	ctx := testCtx(t)
	createTopic(t, c, "orders", 4)
	produceTo(t, c, "orders", 10, 0, 1, 2, 3)
	opts := []GroupOpt{Topics("orders"), FetchOpts(FetchMaxWait(50 * time.Millisecond)), AutoCommitInterval(100 * time.Millisecond)}

	a, err := c.NewGroupConsumer("billing", opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	pa := startPoller(t, a)
	eventually(t, "a reads all 40", func() bool { return pa.count() == 40 })

	b, err := c.NewGroupConsumer("billing", opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	pb := startPoller(t, b)
	eventually(t, "two partitions each", func() bool { return len(a.Assignment()) == 2 && len(b.Assignment()) == 2 })
	produceTo(t, c, "orders", 5, 0, 1, 2, 3)
	eventually(t, "60 records in all", func() bool { return pa.count()+pb.count() == 60 })
	all := append(pa.halt(), pb.halt()...)
	seen := make(map[string]bool)
	for _, r := range all {
		k := fmt.Sprintf("%d/%d", r.Partition, r.Offset)
		if seen[k] {
			t.Errorf("record %s read twice", k)
		}
		seen[k] = true
	}
	if err := a.CommitSync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.CommitSync(ctx); err != nil {
		t.Fatal(err)
	}

	admin := c.Admin()
	d, err := admin.DescribeGroup(ctx, "billing")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Members) != 2 || len(d.Partitions) != 4 || d.TotalLag != 0 {
		t.Errorf("describe: %d members, %d partitions, total lag %d", len(d.Members), len(d.Partitions), d.TotalLag)
	}
	if err := admin.DeleteGroup(ctx, "billing"); !errors.Is(err, apierr.ErrGroupNotEmpty) {
		t.Errorf("delete with members: %v", err)
	}
	if err := admin.CommitOffsets(ctx, "billing", map[TopicPartition]int64{{"orders", 0}: 0}); !errors.Is(err, apierr.ErrGroupNotEmpty) {
		t.Errorf("admin commit with members: %v", err)
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}

	groups, err := admin.ListGroups(ctx)
	if err != nil || len(groups) != 1 || groups[0].Group != "billing" || groups[0].Members != 0 {
		t.Fatalf("list: %v %v", groups, err)
	}
	offs, err := admin.FetchOffsets(ctx, "billing")
	if err != nil || len(offs) != 4 {
		t.Fatalf("fetch offsets: %v %v", offs, err)
	}
	for _, o := range offs {
		if o.Offset != 15 {
			t.Errorf("%s/%d committed %d, want 15", o.Topic, o.Partition, o.Offset)
		}
	}
	// Seek back (the group is empty now) and read from there.
	if err := admin.CommitOffsets(ctx, "billing", map[TopicPartition]int64{{"orders", 2}: 13}); err != nil {
		t.Fatal(err)
	}
	r, err := c.NewGroupConsumer("billing", opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(context.Background())
	recs := pollUntil(t, r, "the two after the seek", func(all []*Record) bool { return len(all) == 2 })
	if recs[0].Partition != 2 || recs[0].Offset != 13 {
		t.Errorf("after seek read %d/%d", recs[0].Partition, recs[0].Offset)
	}
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := admin.DeleteGroup(ctx, "billing"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.DescribeGroup(ctx, "billing"); !errors.Is(err, apierr.ErrUnknownGroup) {
		t.Errorf("describe a deleted group: %v", err)
	}
}

// A static member restarts within its session and gets its partitions
// back; a member whose coordinator moves follows it (three brokers).
func TestBrokerGroupStaticAndFailover(t *testing.T) {
	cl := brokertest.StartCluster(t, 3)
	c, err := New(cl.APIAddrs(), RetryBackoff(time.Millisecond, 50*time.Millisecond), RetryTimeout(20*time.Second), Logger(zaptest.NewLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := testCtx(t)
	if _, err := c.Admin().CreateTopic(ctx, "t", 2, 3, nil); err != nil {
		t.Fatal(err)
	}
	produceTo(t, c, "t", 3, 0, 1)
	opts := []GroupOpt{Topics("t"), FetchOpts(FetchMaxWait(50 * time.Millisecond)), SessionTimeout(10 * time.Second)}

	a, err := c.NewGroupConsumer("g", append(opts, InstanceID("a"))...)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.NewGroupConsumer("g", append(opts, InstanceID("b"))...)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	pb := startPoller(t, b)
	pollUntil(t, a, "a owns one", func([]*Record) bool { return len(a.Assignment()) == 1 })
	eventually(t, "b owns one", func() bool { return len(b.Assignment()) == 1 })
	had := a.Assignment()
	// The coordinator fences members spuriously after its own failover
	// (its stored member epochs lag; see the report): a fenced member
	// cannot commit on Close, and says so.
	if err := a.Close(ctx); err != nil && !errors.Is(err, ErrNotInGroup) && !errors.Is(err, apierr.ErrFencedMemberEpoch) {
		t.Fatal(err)
	}
	a2, err := c.NewGroupConsumer("g", append(opts, InstanceID("a"))...)
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close(context.Background())
	pollUntil(t, a2, "a back", func([]*Record) bool { return len(a2.Assignment()) == 1 })
	if fmt.Sprint(a2.Assignment()) != fmt.Sprint(had) {
		t.Errorf("a back with %v, had %v", a2.Assignment(), had)
	}
	// (b owns the other, unless a spurious fence has it rejoining.)
	eventually(t, "b owns the other", func() bool { return len(b.Assignment()) == 1 })

	// Stop the coordinator: the group moves to the new leader of its
	// offsets partition, and both members carry on.
	var coord uint32
	if err := c.call(ctx, func(ctx context.Context, cl v1.StrataClient) error {
		r, err := cl.FindCoordinator(ctx, &v1.FindCoordinatorRequest{Group: "g"})
		coord = r.GetNodeId()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	cl.Stop(coord)
	produceTo(t, c, "t", 2, 0, 1)
	// Offsets 3 and 4 of each partition are new; a member fenced on the
	// way may read older ones again (at least once).
	readNew := func(recs []*Record) int {
		n := 0
		for _, r := range recs {
			if r.Offset >= 3 {
				n++
			}
		}
		return n
	}
	pollUntil(t, a2, "a reads after failover", func(all []*Record) bool { return readNew(all) >= 2 })
	eventually(t, "b reads after failover", func() bool { return readNew(pb.read()) >= 2 })
	pb.halt()
	// The stopped broker is skipped once the cluster knows it is dead.
	start := time.Now()
	eventually(t, "list groups without the stopped broker", func() bool {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		groups, err := c.Admin().ListGroups(ctx)
		return err == nil && len(groups) == 1 && groups[0].Group == "g"
	})
	t.Logf("groups listed %s after the failover", time.Since(start))
	var cerr error
	pollUntil(t, a2, "a commits after failover", func([]*Record) bool {
		cerr = a2.CommitSync(ctx)
		return cerr == nil
	})
}

// A regex subscription takes in topics created after the member joined.
func TestBrokerGroupTopicRegex(t *testing.T) {
	addr := brokertest.Start(t)
	c := newTestClient(t, addr, RetryTimeout(20*time.Second))
	createTopic(t, c, "ev-a", 1)
	createTopic(t, c, "other", 1)
	gc, err := c.NewGroupConsumer("g", TopicRegex("ev-.*"), FetchOpts(FetchMaxWait(50*time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close(context.Background())
	pollUntil(t, gc, "ev-a", func([]*Record) bool { return fmt.Sprint(gc.Assignment()) == "[ev-a/0]" })
	createTopic(t, c, "ev-b", 2)
	produceTo(t, c, "ev-b", 1, 1)
	recs := pollUntil(t, gc, "ev-b's record", func(all []*Record) bool { return len(all) == 1 })
	if recs[0].Topic != "ev-b" || fmt.Sprint(gc.Assignment()) != "[ev-a/0 ev-b/0 ev-b/1]" {
		t.Errorf("read %s/%d; assignment %v", recs[0].Topic, recs[0].Partition, gc.Assignment())
	}
}
