package client

// Tests of the client's behaviour on the wire, against fakeBroker: real
// gRPC over loopback, with errors injected where the real broker cannot
// be made to fail on demand.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/record"
)

func newTestClient(t *testing.T, addr string, opts ...Opt) *Client {
	t.Helper()
	opts = append([]Opt{RetryBackoff(time.Millisecond, 20*time.Millisecond), RetryTimeout(5 * time.Second)}, opts...)
	c, err := New([]string{addr}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func createTopic(t *testing.T, c *Client, name string, partitions int32) {
	t.Helper()
	if _, err := c.Admin().CreateTopic(testCtx(t), name, partitions, 1, nil); err != nil {
		t.Fatal(err)
	}
}

func TestProduceSyncAssignsOffsetsInOrder(t *testing.T) {
	f := startFake(t)
	c := newTestClient(t, f.addr)
	createTopic(t, c, "t", 1)
	p := c.NewProducer(Linger(time.Hour)) // ProduceSync must not wait for it
	defer p.Close(testCtx(t))

	for round := range 2 {
		var recs []*Record
		for i := range 5 {
			recs = append(recs, &Record{Topic: "t", Value: fmt.Appendf(nil, "v%d", i)})
		}
		start := time.Now()
		res := p.ProduceSync(testCtx(t), recs...)
		if err := res.FirstErr(); err != nil {
			t.Fatal(err)
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("ProduceSync waited for the linger")
		}
		for i, r := range res {
			if want := int64(round*5 + i); r.Record.Offset != want || r.Record.Partition != 0 {
				t.Errorf("round %d record %d: %d/%d, want 0/%d", round, i, r.Record.Partition, r.Record.Offset, want)
			}
			if r.Record.Timestamp.IsZero() {
				t.Errorf("record %d: timestamp not set", i)
			}
		}
	}
	if n := f.callCount("Produce"); n > 4 {
		t.Errorf("%d produce calls for 2 syncs of 5 records; want them batched", n)
	}
}

func TestProduceAsyncFlushAndConsume(t *testing.T) {
	f := startFake(t)
	c := newTestClient(t, f.addr)
	createTopic(t, c, "t", 3)
	p := c.NewProducer(Linger(20*time.Millisecond), BatchMaxBytes(500), Compression(record.Zstd))

	const n = 300
	var mu sync.Mutex
	last := map[int32]int64{0: -1, 1: -1, 2: -1}
	byKey := map[string]int32{}
	var errs []error
	for i := range n {
		key := fmt.Sprintf("k%d", i%10)
		p.Produce(testCtx(t), &Record{Topic: "t", Key: []byte(key), Value: fmt.Appendf(nil, "%d", i)}, func(r *Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			if r.Offset != last[r.Partition]+1 {
				errs = append(errs, fmt.Errorf("partition %d: offset %d after %d", r.Partition, r.Offset, last[r.Partition]))
			}
			last[r.Partition] = r.Offset
			if p, ok := byKey[key]; ok && p != r.Partition {
				errs = append(errs, fmt.Errorf("key %s on partitions %d and %d", key, p, r.Partition))
			}
			byKey[key] = r.Partition
		})
	}
	if err := p.Flush(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	total := last[0] + last[1] + last[2] + 3
	mu.Unlock()
	if total != n {
		t.Fatalf("acknowledged %d records, want %d", total, n)
	}
	if err := p.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}

	cs, err := c.NewConsumer("t")
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	seen := 0
	for seen < n {
		r, err := cs.Next(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("k%s", string(r.Value[len(r.Value)-1:])); string(r.Key) != want {
			t.Fatalf("record %s has key %s", r.Value, r.Key)
		}
		seen++
	}
	pos, hw := cs.Positions(), cs.HighWatermarks()
	for part, off := range last {
		tp := TopicPartition{"t", part}
		if pos[tp] != off+1 || hw[tp] != off+1 {
			t.Errorf("partition %d: position %d hw %d, want %d", part, pos[tp], hw[tp], off+1)
		}
	}
	for part, lag := range cs.Lag() {
		if lag != 0 {
			t.Errorf("%s: lag %d", part, lag)
		}
	}
}

func TestProduceRetriesRetriableErrors(t *testing.T) {
	f := startFake(t)
	c := newTestClient(t, f.addr)
	createTopic(t, c, "t", 1)
	metaBefore := f.callCount("Metadata")
	f.failNext("Produce", v1.ErrorCode_ERROR_CODE_NOT_LEADER, v1.ErrorCode_ERROR_CODE_UNAVAILABLE)
	p := c.NewProducer()
	defer p.Close(testCtx(t))
	res := p.ProduceSync(testCtx(t), &Record{Topic: "t", Value: []byte("x")})
	if err := res.FirstErr(); err != nil {
		t.Fatal(err)
	}
	if got := f.callCount("Produce"); got != 3 {
		t.Errorf("%d produce calls, want 3 (two failures, one success)", got)
	}
	if f.callCount("Metadata") <= metaBefore {
		t.Error("metadata not refreshed after NOT_LEADER")
	}
}

func TestProduceDoesNotRetryOtherErrors(t *testing.T) {
	f := startFake(t)
	c := newTestClient(t, f.addr)
	createTopic(t, c, "t", 1)
	f.failNext("Produce", v1.ErrorCode_ERROR_CODE_RECORD_TOO_LARGE)
	p := c.NewProducer()
	defer p.Close(testCtx(t))
	err := p.ProduceSync(testCtx(t), &Record{Topic: "t", Value: []byte("x")}).FirstErr()
	if !errors.Is(err, apierr.ErrRecordTooLarge) {
		t.Fatalf("got %v, want record too large", err)
	}
	if got := f.callCount("Produce"); got != 1 {
		t.Errorf("%d produce calls, want 1", got)
	}
}

func TestDeliveryTimeout(t *testing.T) {
	f := startFake(t)
	c := newTestClient(t, f.addr)
	createTopic(t, c, "t", 1)
	for range 1000 {
		f.failNext("Produce", v1.ErrorCode_ERROR_CODE_UNAVAILABLE)
	}
	p := c.NewProducer(DeliveryTimeout(200 * time.Millisecond))
	defer p.Close(testCtx(t))
	start := time.Now()
	err := p.ProduceSync(testCtx(t), &Record{Topic: "t", Value: []byte("x")}).FirstErr()
	if !errors.Is(err, apierr.ErrUnavailable) {
		t.Fatalf("got %v, want the last retriable error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("gave up after %s, delivery timeout is 200ms", d)
	}
}

func TestProduceUnknownTopicAndPartition(t *testing.T) {
	f := startFake(t)
	c := newTestClient(t, f.addr)
	createTopic(t, c, "t", 2)
	p := c.NewProducer(RecordPartitioner(ManualPartitioner()))
	defer p.Close(testCtx(t))
	if err := p.ProduceSync(testCtx(t), &Record{Topic: "nope"}).FirstErr(); !errors.Is(err, apierr.ErrUnknownTopic) {
		t.Errorf("unknown topic: %v", err)
	}
	if err := p.ProduceSync(testCtx(t), &Record{Topic: "t", Partition: 2}).FirstErr(); !errors.Is(err, apierr.ErrUnknownPartition) {
		t.Errorf("unknown partition: %v", err)
	}
	res := p.ProduceSync(testCtx(t), &Record{Topic: "t", Partition: 1, Value: []byte("x")})
	if err := res.FirstErr(); err != nil || res[0].Record.Partition != 1 {
		t.Errorf("manual partition 1: %v, partition %d", err, res[0].Record.Partition)
	}
}

func TestBackpressureHonoursContext(t *testing.T) {
	f := startFake(t)
	c := newTestClient(t, f.addr)
	createTopic(t, c, "t", 1)
	for range 1000 {
		f.failNext("Produce", v1.ErrorCode_ERROR_CODE_UNAVAILABLE)
	}
	p := c.NewProducer(MaxBufferedRecords(1), Linger(0))
	first := make(chan error, 1)
	p.Produce(testCtx(t), &Record{Topic: "t", Value: []byte("stuck")}, func(_ *Record, err error) { first <- err })

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	second := make(chan error, 1)
	p.Produce(ctx, &Record{Topic: "t", Value: []byte("blocked")}, func(_ *Record, err error) { second <- err })
	if err := <-second; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second record: %v, want deadline exceeded while the buffer is full", err)
	}
	// Close with an expired context: the stuck record fails with ErrClosed.
	expired, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if err := p.Close(expired); err == nil {
		t.Error("Close with an expired context reported a complete flush")
	}
	if err := <-first; !errors.Is(err, ErrClosed) {
		t.Fatalf("stuck record: %v, want ErrClosed", err)
	}
}

func TestClientCloseFailsBufferedRecords(t *testing.T) {
	f := startFake(t)
	c := newTestClient(t, f.addr)
	createTopic(t, c, "t", 1)
	p := c.NewProducer(Linger(time.Hour))
	done := make(chan error, 1)
	p.Produce(testCtx(t), &Record{Topic: "t"}, func(_ *Record, err error) { done <- err })
	c.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("got %v, want ErrClosed", err)
	}
	if err := p.ProduceSync(testCtx(t), &Record{Topic: "t"}).FirstErr(); !errors.Is(err, ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
}

func TestConsumerStartOffsets(t *testing.T) {
	f := startFake(t)
	c := newTestClient(t, f.addr)
	createTopic(t, c, "t", 1)
	p := c.NewProducer()
	defer p.Close(testCtx(t))
	base := time.UnixMilli(1_700_000_000_000)
	var recs []*Record
	for i := range 10 {
		recs = append(recs, &Record{Topic: "t", Value: fmt.Appendf(nil, "%d", i), Timestamp: base.Add(time.Duration(i) * time.Second)})
	}
	if err := p.ProduceSync(testCtx(t), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for _, c2 := range []struct {
		start Offset
		want  int64 // first offset read; 10 = none
	}{
		{Earliest(), 0},
		{AtOffset(4), 4},
		{FromEnd(3), 7},
		{FromEnd(30), 0},
		{AtTime(base.Add(6 * time.Second)), 6},
		{AtTime(base.Add(time.Hour)), 10},
		{Latest(), 10},
	} {
		cs, err := c.NewConsumer("t", StartAt(c2.start), FetchMaxWait(10*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		got, err := cs.Poll(testCtx(t))
		cs.Close()
		if err != nil {
			t.Fatalf("%v: %v", c2.start, err)
		}
		first := int64(10)
		if len(got) > 0 {
			first = got[0].Offset
		}
		if first != c2.want || (first < 10 && int64(len(got)) != 10-first) {
			t.Errorf("StartAt(%v): first offset %d of %d records, want %d", c2.start, first, len(got), c2.want)
		}
	}
}

func TestConsumerResetsOutOfRange(t *testing.T) {
	f := startFake(t)
	c := newTestClient(t, f.addr)
	createTopic(t, c, "t", 1)
	p := c.NewProducer()
	defer p.Close(testCtx(t))
	for i := range 4 { // four batches: 0, 1, 2, 3
		if err := p.ProduceSync(testCtx(t), &Record{Topic: "t", Value: fmt.Appendf(nil, "%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	f.truncateFront("t", 0, 2)

	var resets []string
	cs, err := c.NewConsumer("t", StartAt(AtOffset(0)), OnReset(func(topic string, p int32, from, to int64) {
		resets = append(resets, fmt.Sprintf("%s/%d %d->%d", topic, p, from, to))
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	r, err := cs.Next(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if r.Offset != 2 || fmt.Sprint(resets) != "[t/0 0->2]" {
		t.Fatalf("first record %d, resets %v; want 2 and [t/0 0->2]", r.Offset, resets)
	}

	cs2, err := c.NewConsumer("t", StartAt(AtOffset(99)), ResetPolicy(Latest()), FetchMaxWait(10*time.Millisecond),
		OnReset(func(_ string, _ int32, from, to int64) { resets = append(resets, fmt.Sprintf("%d->%d", from, to)) }))
	if err != nil {
		t.Fatal(err)
	}
	defer cs2.Close()
	if _, err := cs2.Poll(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if got := cs2.Positions()[TopicPartition{"t", 0}]; got != 4 {
		t.Fatalf("position after reset to latest: %d, want 4", got)
	}
}

func TestConsumerLongPollWakesOnProduce(t *testing.T) {
	f := startFake(t)
	c := newTestClient(t, f.addr)
	createTopic(t, c, "t", 1)
	cs, err := c.NewConsumer("t", StartAt(Latest()), FetchMaxWait(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	got := make(chan *Record, 1)
	errc := make(chan error, 1)
	go func() {
		r, err := cs.Next(testCtx(t))
		got <- r
		errc <- err
	}()
	// Produce until the consumer sees a record (its start is resolved
	// concurrently, so an early record may be below Latest).
	p := c.NewProducer()
	defer p.Close(testCtx(t))
	for {
		if err := p.ProduceSync(testCtx(t), &Record{Topic: "t", Value: []byte("wake")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-got:
			if err := <-errc; err != nil || string(r.Value) != "wake" {
				t.Fatalf("got %v, %v", r, err)
			}
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func TestConsumerCloseStopsPoll(t *testing.T) {
	f := startFake(t)
	c := newTestClient(t, f.addr)
	createTopic(t, c, "t", 1)
	cs, err := c.NewConsumer("t", FetchMaxWait(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := cs.Poll(testCtx(t))
		errc <- err
	}()
	// Wait until the fetch is in flight, then close.
	deadline := time.Now().Add(10 * time.Second)
	for f.callCount("Fetch") == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cs.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("Poll after Close: %v", err)
	}
}

func TestConsumerUnknownTopic(t *testing.T) {
	f := startFake(t)
	c := newTestClient(t, f.addr)
	cs, err := c.NewConsumer("missing")
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if _, err := cs.Poll(testCtx(t)); !errors.Is(err, apierr.ErrUnknownTopic) {
		t.Fatalf("got %v", err)
	}
	cs2, _ := c.NewConsumer("missing", Partitions(3))
	defer cs2.Close()
	createTopic(t, c, "missing", 1)
	if _, err := cs2.Poll(testCtx(t)); !errors.Is(err, apierr.ErrUnknownPartition) {
		t.Fatalf("partition 3 of 1: %v", err)
	}
}

func TestAdmin(t *testing.T) {
	f := startFake(t)
	c := newTestClient(t, f.addr)
	a := c.Admin()
	ctx := testCtx(t)
	if _, err := a.CreateTopic(ctx, "a", 2, 1, map[string]string{"retention.ms": "1000"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateTopic(ctx, "a", 2, 1, nil); !errors.Is(err, apierr.ErrTopicExists) {
		t.Errorf("create twice: %v", err)
	}
	var e *apierr.Error
	if _, err := a.DescribeTopic(ctx, "zzz"); !errors.As(err, &e) || !errors.Is(err, apierr.ErrUnknownTopic) {
		t.Errorf("describe unknown: %v", err)
	}
	topics, err := a.ListTopics(ctx)
	if err != nil || len(topics) != 1 || topics[0].Name != "a" || topics[0].Partitions != 2 {
		t.Errorf("list: %v, %v", topics, err)
	}
	d, err := a.DescribeTopic(ctx, "a")
	if err != nil || len(d.Partitions) != 2 {
		t.Errorf("describe: %v, %v", d, err)
	}
	md, err := a.Metadata(ctx)
	if err != nil || md.ClusterID != "fake" || len(md.Brokers) != 1 {
		t.Errorf("metadata: %v, %v", md, err)
	}
	lo, err := a.ListOffsets(ctx, "a", 1, OffsetSpecLatest, time.Time{})
	if err != nil || lo.Offset != 0 {
		t.Errorf("list offsets: %v, %v", lo, err)
	}
	if _, err := a.ListOffsets(ctx, "a", 7, OffsetSpecLatest, time.Time{}); !errors.Is(err, apierr.ErrUnknownPartition) {
		t.Errorf("list offsets of a missing partition: %v", err)
	}
	if err := a.DeleteTopic(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteTopic(ctx, "a"); !errors.Is(err, apierr.ErrUnknownTopic) {
		t.Errorf("delete twice: %v", err)
	}
}

func TestAdminRetriesUnavailable(t *testing.T) {
	f := startFake(t)
	c := newTestClient(t, f.addr)
	f.failNext("CreateTopic", v1.ErrorCode_ERROR_CODE_UNAVAILABLE)
	if _, err := c.Admin().CreateTopic(testCtx(t), "a", 1, 1, nil); err != nil {
		t.Fatal(err)
	}
	if got := f.callCount("CreateTopic"); got != 2 {
		t.Errorf("%d calls, want 2", got)
	}
}

func TestUnreachableBrokerGivesUpAfterRetryTimeout(t *testing.T) {
	c := newTestClient(t, "127.0.0.1:1", RetryTimeout(300*time.Millisecond))
	start := time.Now()
	_, err := c.Admin().ListTopics(testCtx(t))
	if !errors.Is(err, apierr.ErrUnavailable) {
		t.Fatalf("got %v, want unavailable", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %s", d)
	}
}
