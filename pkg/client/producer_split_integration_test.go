package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"google.golang.org/grpc"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/brokertest"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/record"
)

// produceLog is a client interceptor that notes every Produce request's
// batch size and whether the partition refused it as RECORD_TOO_LARGE.
type produceLog struct {
	mu       sync.Mutex
	largest  int   // bytes of the largest batch sent
	sent     int   // produce requests
	tooLarge int   // requests refused as RECORD_TOO_LARGE
	refused  []int // the record counts of the refused batches
}

func (l *produceLog) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	pr, ok := req.(*v1.ProduceRequest)
	if !ok {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sent++
	for _, pp := range pr.Partitions {
		l.largest = max(l.largest, len(pp.Batches))
	}
	if resp, ok := reply.(*v1.ProduceResponse); ok && err == nil {
		for i, r := range resp.Partitions {
			if errors.Is(apierr.FromProto(r.Error), apierr.ErrRecordTooLarge) {
				l.tooLarge++
				if h, herr := record.ParseHeader(pr.Partitions[i].Batches); herr == nil {
					l.refused = append(l.refused, int(h.RecordCount))
				}
			}
		}
	}
	return err
}

// kib makes n records of 1 KiB whose values start with prefix and a
// 4-digit number (readAll keys the log by the first 5 bytes).
func kib(topic, prefix string, n int) []*Record {
	var recs []*Record
	for i := range n {
		v := make([]byte, 1024)
		copy(v, fmt.Sprintf("%s%04d", prefix, i))
		recs = append(recs, &Record{Topic: topic, Value: v})
	}
	return recs
}

// checkStored fails unless every record in ok was acknowledged at its own
// offset of partition 0, in the order given, and the log holds it there,
// and the log holds want records in all.
func checkStored(t *testing.T, c *Client, topic string, ok []*Record, want int) {
	t.Helper()
	got := readAll(t, c, topic, 1)
	if len(got) != want {
		t.Fatalf("%d records stored, want %d", len(got), want)
	}
	for i, r := range ok {
		if i > 0 && r.Offset <= ok[i-1].Offset {
			t.Fatalf("record %s acknowledged at offset %d, after %s at %d: out of order", r.Value[:5], r.Offset, ok[i-1].Value[:5], ok[i-1].Offset)
		}
		if at := got[[2]int64{0, r.Offset}]; at != string(r.Value[:5]) {
			t.Fatalf("record %s acknowledged at offset %d, the log holds %q there", r.Value[:5], r.Offset, at)
		}
	}
}

// TestProducerSizesBatchesUnderTopicLimit: a topic with max.message.bytes
// 65536, under the producer's default 1 MiB batches, takes 1000 records
// of 1 KiB from a default producer: every record stored once, in order, at
// the offset its callback reports; every batch sent was under the limit
// (metadata told the producer), so none was refused.
func TestProducerSizesBatchesUnderTopicLimit(t *testing.T) {
	addr := brokertest.Start(t)
	ctx := testCtx(t)
	pl := &produceLog{}
	c := newTestClient(t, addr, DialOptions(grpc.WithChainUnaryInterceptor(pl.intercept)))
	if _, err := c.Admin().CreateTopic(ctx, "small", 1, 1, map[string]string{"max.message.bytes": "65536"}); err != nil {
		t.Fatal(err)
	}
	p := c.NewProducer()
	recs := kib("small", "r", 1000)
	var wg sync.WaitGroup
	errs := make([]error, len(recs))
	wg.Add(len(recs))
	for i, r := range recs {
		p.Produce(ctx, r, func(_ *Record, err error) { errs[i] = err; wg.Done() })
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	checkStored(t, c, "small", recs, len(recs))
	if pl.tooLarge != 0 || pl.largest > 65536 || pl.sent < 1000*1024/65536 {
		t.Fatalf("%d batches sent, the largest %d bytes, %d refused as too large: want at least %d, all of them at most 65536 bytes, none refused",
			pl.sent, pl.largest, pl.tooLarge, 1000*1024/65536)
	}
}

// TestProducerSplitsWhenLimitLowered: the topic's max.message.bytes is
// lowered from 65536 to 8192 after two producers (on two clients, each
// with its own metadata) learned the old one, so their next batches are
// refused as RECORD_TOO_LARGE and split in halves until they fit.
//
//   - 200 records of 1 KiB: every one stored once, in order, at the offset
//     its callback reports. With the idempotent producer (the default) the
//     halves reuse the refused batch's sequence numbers; a wrong number
//     would be refused as out of order.
//   - 10 records of 1 KiB, one of 20 KiB, 10 more of 1 KiB, sent in one
//     batch: the 20 KiB record, alone over the new limit, fails with
//     RECORD_TOO_LARGE, and the 20 batched with it are stored.
func TestProducerSplitsWhenLimitLowered(t *testing.T) {
	addr := brokertest.Start(t)
	ctx := testCtx(t)
	pl := &produceLog{}
	c := newTestClient(t, addr, DialOptions(grpc.WithChainUnaryInterceptor(pl.intercept)))
	c2 := newTestClient(t, addr, DialOptions(grpc.WithChainUnaryInterceptor(pl.intercept)))
	if _, err := c.Admin().CreateTopic(ctx, "shrinks", 1, 1, map[string]string{"max.message.bytes": "65536"}); err != nil {
		t.Fatal(err)
	}
	p, p2 := c.NewProducer(), c2.NewProducer()
	defer p.Close(ctx)
	defer p2.Close(ctx)
	first := append(kib("shrinks", "a", 1), kib("shrinks", "e", 1)...)
	if err := p.ProduceSync(ctx, first[0]).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := p2.ProduceSync(ctx, first[1]).FirstErr(); err != nil {
		t.Fatal(err)
	}

	// Lower the limit, and wait until the partition enforces it: a probe
	// from a third client of one 16 KiB record is refused. Probes sent
	// before that are stored, and counted.
	admin := newTestClient(t, addr)
	if _, err := admin.Admin().AlterTopicConfig(ctx, "shrinks", map[string]string{"max.message.bytes": "8192"}, nil); err != nil {
		t.Fatal(err)
	}
	probe := admin.NewProducer()
	defer probe.Close(ctx)
	probes := 0
	for {
		err := probe.ProduceSync(ctx, &Record{Topic: "shrinks", Value: append([]byte("probe"), make([]byte, 16<<10)...)}).FirstErr()
		if errors.Is(err, apierr.ErrRecordTooLarge) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		probes++
	}

	recs := kib("shrinks", "b", 200)
	if err := p.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("after the limit was lowered: %v", err)
	}
	if pl.tooLarge == 0 {
		t.Fatal("no batch was refused as too large: the split path was not taken, the test proves nothing")
	}

	big := &Record{Topic: "shrinks", Value: append([]byte("huge0"), make([]byte, 20<<10)...)}
	mixed := append(kib("shrinks", "c", 10), big)
	mixed = append(mixed, kib("shrinks", "d", 10)...)
	pl.refused = nil
	var stored []*Record
	for _, r := range p2.ProduceSync(ctx, mixed...) {
		switch {
		case r.Record == big:
			if !errors.Is(r.Err, apierr.ErrRecordTooLarge) {
				t.Fatalf("the 20 KiB record over the 8 KiB limit: %v, want RECORD_TOO_LARGE", r.Err)
			}
		case r.Err != nil:
			t.Fatalf("record %s, batched with one too large: %v", r.Record.Value[:5], r.Err)
		default:
			stored = append(stored, r.Record)
		}
	}
	if len(pl.refused) < 2 || pl.refused[0] != len(mixed) || pl.refused[len(pl.refused)-1] != 1 {
		t.Fatalf("refused batches of %v records: want the whole batch of %d first and the big record alone last", pl.refused, len(mixed))
	}
	all := append(append(first, recs...), stored...)
	checkStored(t, c, "shrinks", all, len(all)+probes)
}
