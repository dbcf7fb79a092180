package client

// Integration tests against a real in-process broker (internal/brokertest):
// what the fake cannot show — the broker's offsets, long polls, retention
// errors and metadata are what the client expects.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/brokertest"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/record"
)

func TestBrokerRoundTrip(t *testing.T) {
	addr := brokertest.Start(t)
	c := newTestClient(t, addr)
	ctx := testCtx(t)
	if _, err := c.Admin().CreateTopic(ctx, "orders", 4, 1, nil); err != nil {
		t.Fatal(err)
	}
	p := c.NewProducer(Compression(record.LZ4), Linger(2*time.Millisecond))

	const n = 2000
	var mu sync.Mutex
	want := make(map[string]string) // "p/o" -> value
	keyPart := make(map[string]int32)
	var errs []error
	for i := range n {
		key := fmt.Sprintf("customer-%d", i%37)
		val := fmt.Sprintf("order-%d", i)
		p.Produce(ctx, &Record{Topic: "orders", Key: []byte(key), Value: []byte(val),
			Headers: []record.Header{{Key: "i", Value: fmt.Append(nil, i)}}}, func(r *Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			if p, ok := keyPart[key]; ok && p != r.Partition {
				errs = append(errs, fmt.Errorf("key %s on %d and %d", key, p, r.Partition))
			}
			keyPart[key] = r.Partition
			if want[fmt.Sprintf("%d/%d", r.Partition, r.Offset)] != "" {
				errs = append(errs, fmt.Errorf("offset %d/%d given twice", r.Partition, r.Offset))
			}
			want[fmt.Sprintf("%d/%d", r.Partition, r.Offset)] = val
		})
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if len(errs) > 0 || len(want) != n {
		t.Fatalf("%d acknowledged, errors %v", len(want), errs)
	}
	// Keys are placed like Kafka's Java client places them.
	for key, part := range keyPart {
		if exp := int32(toPositive(murmur2([]byte(key))) % 4); part != exp {
			t.Errorf("key %s on partition %d, Kafka's partitioner says %d", key, part, exp)
		}
	}

	cs, err := c.NewConsumer("orders")
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	for range n {
		r, err := cs.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		k := fmt.Sprintf("%d/%d", r.Partition, r.Offset)
		if want[k] != string(r.Value) {
			t.Fatalf("%s: got %q, want %q", k, r.Value, want[k])
		}
		if len(r.Headers) != 1 || r.Headers[0].Key != "i" {
			t.Fatalf("%s: headers %v", k, r.Headers)
		}
		delete(want, k)
	}
	for p, lag := range cs.Lag() {
		if lag != 0 {
			t.Errorf("%s: lag %d after reading everything", p, lag)
		}
	}

	d, err := c.Admin().DescribeTopic(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	var hw int64
	for _, p := range d.Partitions {
		hw += p.HighWatermark
	}
	if hw != n {
		t.Errorf("high watermarks sum to %d, want %d", hw, n)
	}
}

func TestBrokerStartOffsets(t *testing.T) {
	addr := brokertest.Start(t)
	c := newTestClient(t, addr)
	ctx := testCtx(t)
	createTopic(t, c, "t", 1)
	p := c.NewProducer()
	defer p.Close(ctx)
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	for i := range 10 { // ten batches of one record
		r := &Record{Topic: "t", Value: fmt.Append(nil, i), Timestamp: base.Add(time.Duration(i) * time.Minute)}
		if err := p.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if r.Offset != int64(i) {
			t.Fatalf("record %d got offset %d", i, r.Offset)
		}
	}
	for _, c2 := range []struct {
		start Offset
		want  int64
	}{
		{Earliest(), 0}, {AtOffset(3), 3}, {FromEnd(2), 8}, {AtTime(base.Add(5 * time.Minute)), 5}, {Latest(), 10},
	} {
		cs, err := c.NewConsumer("t", StartAt(c2.start), FetchMaxWait(10*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		recs, err := cs.Poll(ctx)
		pos := cs.Positions()[TopicPartition{"t", 0}]
		cs.Close()
		if err != nil {
			t.Fatalf("%v: %v", c2.start, err)
		}
		first := pos
		if len(recs) > 0 {
			first = recs[0].Offset
		}
		if first != c2.want {
			t.Errorf("StartAt(%v): first %d, want %d", c2.start, first, c2.want)
		}
	}

	// An offset past the end is out of range: reset to Latest, reported.
	var resets []string
	cs, err := c.NewConsumer("t", StartAt(AtOffset(50)), ResetPolicy(Latest()), FetchMaxWait(10*time.Millisecond),
		OnReset(func(_ string, p int32, from, to int64) {
			resets = append(resets, fmt.Sprintf("%d:%d->%d", p, from, to))
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if _, err := cs.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(resets) != "[0:50->10]" {
		t.Errorf("resets %v, want [0:50->10]", resets)
	}
}

func TestBrokerErrors(t *testing.T) {
	addr := brokertest.Start(t)
	c := newTestClient(t, addr)
	ctx := testCtx(t)
	a := c.Admin()
	if _, err := a.DescribeTopic(ctx, "nope"); !errors.Is(err, apierr.ErrUnknownTopic) {
		t.Errorf("describe unknown: %v", err)
	}
	if _, err := a.CreateTopic(ctx, "bad", 0, 1, nil); !errors.Is(err, apierr.ErrInvalidPartitions) {
		t.Errorf("zero partitions: %v", err)
	}
	createTopic(t, c, "t", 1)
	if _, err := a.CreateTopic(ctx, "t", 1, 1, nil); !errors.Is(err, apierr.ErrTopicExists) {
		t.Errorf("create twice: %v", err)
	}
	if _, err := a.AlterTopicConfig(ctx, "t", map[string]string{"no.such.key": "1"}, nil); !errors.Is(err, apierr.ErrInvalidConfig) {
		t.Errorf("bad config: %v", err)
	}
	d, err := a.AlterTopicConfig(ctx, "t", map[string]string{"retention.ms": "1000"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range d.Configs {
		if cfg.Key == "retention.ms" && (cfg.Value != "1000" || cfg.Default) {
			t.Errorf("retention.ms after alter: %v", cfg)
		}
	}
	p := c.NewProducer()
	defer p.Close(ctx)
	if err := p.ProduceSync(ctx, &Record{Topic: "nope", Value: []byte("x")}).FirstErr(); !errors.Is(err, apierr.ErrUnknownTopic) {
		t.Errorf("produce to unknown topic: %v", err)
	}
	md, err := a.Metadata(ctx)
	if err != nil || len(md.Brokers) != 1 || md.Brokers[0].APIAddr == "" {
		t.Errorf("metadata: %v, %v", md, err)
	}
	lo, err := a.ListOffsets(ctx, "t", 0, OffsetSpecLatest, time.Time{})
	if err != nil || lo.Offset != 0 {
		t.Errorf("list offsets: %v, %v", lo, err)
	}
	if err := a.DeleteTopic(ctx, "t"); err != nil {
		t.Fatal(err)
	}
}

// TestProducerContextTryProduceAndBuffered: a record whose Produce context
// ends before it is sent fails with the context's error and is not
// stored; TryProduce fails at once on a full buffer; BufferedRecords
// counts what waits.
func TestProducerContextTryProduceAndBuffered(t *testing.T) {
	addr := brokertest.Start(t)
	c := newTestClient(t, addr)
	ctx := testCtx(t)
	if _, err := c.Admin().CreateTopic(ctx, "cx", 1, 1, nil); err != nil {
		t.Fatal(err)
	}
	p := c.NewProducer(Linger(time.Hour), MaxBufferedRecords(2))
	defer p.Close(ctx)

	rctx, cancel := context.WithCancel(ctx)
	gone := make(chan error, 1)
	p.Produce(rctx, &Record{Topic: "cx", Value: []byte("cancelled")}, func(_ *Record, err error) { gone <- err })
	kept := make(chan error, 1)
	p.Produce(ctx, &Record{Topic: "cx", Value: []byte("kept")}, func(_ *Record, err error) { kept <- err })
	if n := p.BufferedRecords(); n != 2 {
		t.Fatalf("BufferedRecords %d, want 2", n)
	}
	full := make(chan error, 1)
	p.TryProduce(ctx, &Record{Topic: "cx", Value: []byte("no room")}, func(_ *Record, err error) { full <- err })
	if err := <-full; !errors.Is(err, ErrMaxBuffered) {
		t.Fatalf("TryProduce on a full buffer: %v, want ErrMaxBuffered", err)
	}
	cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-gone; !errors.Is(err, context.Canceled) {
		t.Fatalf("record whose context was cancelled before sending: %v, want context.Canceled", err)
	}
	if err := <-kept; err != nil {
		t.Fatalf("the other record: %v", err)
	}
	if n := p.BufferedRecords(); n != 0 {
		t.Fatalf("BufferedRecords after Flush %d, want 0", n)
	}
	// A context already done fails the record at once.
	done := make(chan error, 1)
	p.Produce(rctx, &Record{Topic: "cx", Value: []byte("late")}, func(_ *Record, err error) { done <- err })
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Produce with a cancelled context: %v", err)
	}
	cs, err := c.NewConsumer("cx", StartAt(Earliest()))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	rec, err := cs.Next(ctx)
	if err != nil || string(rec.Value) != "kept" || rec.Offset != 0 {
		t.Fatalf("first stored record: %v %v, want kept at offset 0", rec, err)
	}
	lo, err := c.Admin().ListOffsets(ctx, "cx", 0, OffsetSpecLatest, time.Time{})
	if err != nil || lo.Offset != 1 {
		t.Fatalf("high watermark %v (%v), want 1: a cancelled record was stored", lo, err)
	}
}

// TestConsumerSeekPauseResume: Seek moves a partition's position (and
// drops what Next had buffered for it); a paused partition is not read
// until resumed, and nothing of it is skipped.
func TestConsumerSeekPauseResume(t *testing.T) {
	addr := brokertest.Start(t)
	c := newTestClient(t, addr)
	ctx := testCtx(t)
	if _, err := c.Admin().CreateTopic(ctx, "sp", 2, 1, nil); err != nil {
		t.Fatal(err)
	}
	p := c.NewProducer(RecordPartitioner(ManualPartitioner()))
	var recs []*Record
	for i := range 10 {
		recs = append(recs, &Record{Topic: "sp", Partition: int32(i % 2), Value: fmt.Appendf(nil, "%d", i)})
	}
	if err := p.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cs, err := c.NewConsumer("sp", StartAt(Earliest()), FetchMaxWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	// Read until partition 0's offset 2 has come by Next.
	for {
		r, err := cs.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if r.Partition == 0 && r.Offset == 2 {
			break
		}
	}
	sp0 := TopicPartition{"sp", 0}
	if err := cs.Seek(ctx, "sp", 0, AtOffset(1)); err != nil {
		t.Fatal(err)
	}
	if pos := cs.Positions()[sp0]; pos != 1 {
		t.Fatalf("position after Seek %d, want 1", pos)
	}
	r := nextOf(ctx, t, cs, 0)
	if r.Offset != 1 {
		t.Fatalf("after Seek to 1, partition 0 gave offset %d", r.Offset)
	}
	if err := cs.Seek(ctx, "sp", 7, Earliest()); err == nil {
		t.Fatal("Seek to a partition the consumer does not read succeeded")
	}

	cs.Pause(sp0)
	if got := cs.Paused(); len(got) != 1 || got[0] != sp0 {
		t.Fatalf("Paused %v", got)
	}
	held := cs.Positions()[sp0]
	for range 3 {
		got, err := cs.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range got {
			if r.Partition == 0 {
				t.Fatalf("a paused partition was read: %v", r)
			}
		}
	}
	cs.Resume(sp0)
	if r := nextOf(ctx, t, cs, 0); r.Offset != held {
		t.Fatalf("after Resume partition 0 gave offset %d, want %d (its position when paused)", r.Offset, held)
	}
	if err := cs.Close(); err != nil {
		t.Fatal(err)
	}
}

// nextOf returns the next record of partition from cs.
func nextOf(ctx context.Context, t *testing.T, cs *Consumer, partition int32) *Record {
	t.Helper()
	for {
		r, err := cs.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if r.Partition == partition {
			return r
		}
	}
}
