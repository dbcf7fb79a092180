package client

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/record"
)

func pendingOfSizes(sizes ...int) *partBuf {
	pb := &partBuf{}
	for _, s := range sizes {
		r := &Record{Value: make([]byte, s-20)} // size() adds 20
		pb.recs = append(pb.recs, pending{r: r, ctx: context.Background()})
		pb.bytes += r.size()
	}
	return pb
}

func TestTakeBatch(t *testing.T) {
	for _, c := range []struct {
		sizes    []int
		max      int
		want     []int // batch lengths until empty
		restByte int
	}{
		{sizes: []int{100, 100, 100}, max: 1000, want: []int{3}},
		{sizes: []int{100, 100, 100}, max: 200, want: []int{2, 1}},
		{sizes: []int{100, 100, 100}, max: 199, want: []int{1, 1, 1}},
		{sizes: []int{500, 20, 20}, max: 100, want: []int{1, 2}}, // oversized goes alone
		{sizes: []int{20, 500, 20}, max: 100, want: []int{1, 1, 1}},
	} {
		pb := pendingOfSizes(c.sizes...)
		pb.force, pb.lingerDone = true, true
		var got []int
		for len(pb.recs) > 0 {
			b, _ := takeBatch(pb, c.max)
			got = append(got, len(b))
			if pb.lingerDone {
				t.Errorf("%v/%d: lingerDone not cleared", c.sizes, c.max)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("sizes %v max %d: batches %v, want %v", c.sizes, c.max, got, c.want)
		}
		if pb.bytes != 0 || pb.force {
			t.Errorf("sizes %v: emptied buffer keeps bytes=%d force=%v", c.sizes, pb.bytes, pb.force)
		}
	}
}

func TestTakeBatchDoesNotAliasRest(t *testing.T) {
	pb := pendingOfSizes(30, 30, 30)
	b, _ := takeBatch(pb, 30)
	b = append(b, pending{}) // must not overwrite pb.recs[0]
	if pb.recs[0].r == nil {
		t.Fatal("appending to a batch overwrote the pending list")
	}
}

// TestTakeBatchSetsCancelledApart: records whose Produce context ended
// are taken out of the batch, to fail unsent; the others keep their order.
func TestTakeBatchSetsCancelledApart(t *testing.T) {
	pb := pendingOfSizes(30, 30, 30, 30)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	pb.recs[1].ctx, pb.recs[3].ctx = ctx, ctx
	first, third := pb.recs[0].r, pb.recs[2].r
	b, cancelled := takeBatch(pb, 1000)
	if len(b) != 2 || b[0].r != first || b[1].r != third || len(cancelled) != 2 || len(pb.recs) != 0 {
		t.Fatalf("batch %d (%v), cancelled %d, left %d", len(b), b, len(cancelled), len(pb.recs))
	}
}

func TestProducerReadiness(t *testing.T) {
	p := &Producer{cfg: defaultProducerConfig()}
	p.cfg.linger = time.Hour
	pb := pendingOfSizes(100)
	pb.recs[0].enqueued = time.Now()
	if p.readyLocked(pb) {
		t.Fatal("a small batch is ready before the linger")
	}
	pb.recs[0].enqueued = time.Now().Add(-2 * time.Hour)
	if !p.readyLocked(pb) {
		t.Fatal("a batch whose oldest record waited the linger is not ready")
	}
	for name, set := range map[string]func(){
		"force":  func() { pb.force = true },
		"linger": func() { pb.lingerDone = true },
		"flush":  func() { p.mu.flushing = 1 },
		"full":   func() { pb.bytes = p.cfg.batchMaxBytes },
		"full under the topic's limit": func() {
			pb.maxMessageBytes, pb.bytes = 4096, 4096-record.HeaderSize
		},
		"linger=0": func() { p.cfg.linger = 0 },
	} {
		pb, p.mu.flushing, p.cfg = pendingOfSizes(100), 0, defaultProducerConfig()
		pb.recs[0].enqueued = time.Now()
		set()
		if !p.readyLocked(pb) {
			t.Errorf("%s: not ready", name)
		}
	}
	if p.readyLocked(&partBuf{force: true}) {
		t.Error("an empty buffer is ready")
	}
}

func encode(t *testing.T, base int64, values ...string) []byte {
	t.Helper()
	var recs []record.Record
	for _, v := range values {
		recs = append(recs, record.Record{Value: []byte(v)})
	}
	b, err := record.Encode(recs, record.EncodeOptions{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1})
	if err != nil {
		t.Fatal(err)
	}
	record.SetBaseOffset(b, base)
	return b
}

func controlBatch(t *testing.T, base int64) []byte {
	b := encode(t, base, "marker")
	b[22] |= 0x20 // attributes bit 5: control
	binary.BigEndian.PutUint32(b[17:], record.Checksum(b))
	return b
}

func TestDecodeFetched(t *testing.T) {
	var log []byte
	log = append(log, encode(t, 10, "a", "b", "c")...) // 10..12
	log = append(log, controlBatch(t, 13)...)          // 13
	log = append(log, encode(t, 14, "d", "e")...)      // 14..15

	for _, c := range []struct {
		from int64
		want string
		next int64
	}{
		{10, "[10:a 11:b 12:c 14:d 15:e]", 16},
		{11, "[11:b 12:c 14:d 15:e]", 16}, // first batch starts below the position
		{13, "[14:d 15:e]", 16},           // control batch skipped
		{15, "[15:e]", 16},
		{16, "[]", 16},
	} {
		recs, next, err := decodeFetched("t", 2, log, c.from)
		if err != nil {
			t.Fatalf("from %d: %v", c.from, err)
		}
		var got []string
		for _, r := range recs {
			if r.Topic != "t" || r.Partition != 2 {
				t.Errorf("record %v not tagged t/2", r)
			}
			got = append(got, fmt.Sprintf("%d:%s", r.Offset, r.Value))
		}
		if fmt.Sprint(got) != c.want || next != c.next {
			t.Errorf("from %d: %v next %d, want %s next %d", c.from, got, next, c.want, c.next)
		}
	}

	// Only a control batch: the position still moves past it.
	if recs, next, err := decodeFetched("t", 0, controlBatch(t, 13), 13); err != nil || len(recs) != 0 || next != 14 {
		t.Errorf("control only: %v, next %d, %v", recs, next, err)
	}
	// A cut-off last batch ends the fetch; the next one rereads it.
	recs, next, err := decodeFetched("t", 0, log[:len(log)-5], 10)
	if err != nil || len(recs) != 3 || next != 14 {
		t.Errorf("cut-off: %d records, next %d, %v", len(recs), next, err)
	}
	// Garbage with nothing decoded is a corrupt batch.
	if _, _, err := decodeFetched("t", 0, []byte("garbage"), 0); !errors.Is(err, apierr.ErrCorruptBatch) {
		t.Errorf("garbage: %v", err)
	}
	// A flipped bit fails the CRC.
	bad := encode(t, 0, "x")
	bad[len(bad)-1] ^= 1
	if _, _, err := decodeFetched("t", 0, bad, 0); !errors.Is(err, record.ErrCorrupt) {
		t.Errorf("bad crc: %v", err)
	}
}

func TestFixAddr(t *testing.T) {
	for _, c := range [][3]string{
		{"0.0.0.0:9092", "10.0.0.5:9092", "10.0.0.5:9092"},
		{"[::]:9093", "localhost:9092", "localhost:9093"},
		{":9094", "127.0.0.1:9092", "127.0.0.1:9094"},
		{"broker-2:9092", "127.0.0.1:9092", "broker-2:9092"},
		{"10.1.1.1:9092", "127.0.0.1:9092", "10.1.1.1:9092"},
	} {
		if got := fixAddr(c[0], c[1]); got != c[2] {
			t.Errorf("fixAddr(%q, %q) = %q, want %q", c[0], c[1], got, c[2])
		}
	}
}

// TestBatchBytesUnderTopicLimit: a partition's batches are cut at
// BatchMaxBytes or under the topic's max.message.bytes, whichever is
// less, and a batch cut there encodes within the limit: Record.size
// allows more per record than the encoding takes, for records with and
// without keys and headers, tiny to large.
func TestBatchBytesUnderTopicLimit(t *testing.T) {
	p := &Producer{cfg: defaultProducerConfig()}
	for _, c := range []struct {
		batchMax, topicMax, want int
	}{
		{batchMax: 1 << 20, topicMax: 0, want: 1 << 20}, // broker did not say
		{batchMax: 1 << 20, topicMax: 65536, want: 65536 - record.HeaderSize},
		{batchMax: 16 << 10, topicMax: 65536, want: 16 << 10},
		{batchMax: 1 << 20, topicMax: 10, want: 1}, // under the header: records go alone
	} {
		p.cfg.batchMaxBytes = c.batchMax
		if got := p.batchBytesLocked(&partBuf{maxMessageBytes: c.topicMax}); got != c.want {
			t.Errorf("BatchMaxBytes %d, max.message.bytes %d: batches cut at %d, want %d", c.batchMax, c.topicMax, got, c.want)
		}
	}

	p.cfg = defaultProducerConfig()
	for _, limit := range []int{1024, 8192, 65536} {
		for _, shape := range []struct {
			key, value, headers int
		}{{0, 0, 0}, {0, 10, 0}, {8, 100, 2}, {0, 1024, 0}, {16, 300, 5}} {
			pb := &partBuf{maxMessageBytes: limit}
			for range 2 * limit {
				r := &Record{Key: make([]byte, shape.key), Value: make([]byte, shape.value)}
				for range shape.headers {
					r.Headers = append(r.Headers, Header{Key: "h", Value: []byte("v")})
				}
				pb.recs = append(pb.recs, pending{r: r, ctx: context.Background()})
				pb.bytes += r.size()
			}
			batch, _ := takeBatch(pb, p.batchBytesLocked(pb))
			recs := make([]record.Record, len(batch))
			for i, pr := range batch {
				recs[i] = pr.r.toBatchRecord()
			}
			b, err := record.Encode(recs, record.EncodeOptions{ProducerID: 1, ProducerEpoch: 0, BaseSequence: 0})
			if err != nil {
				t.Fatal(err)
			}
			if len(batch) > 1 && len(b) > limit {
				t.Errorf("limit %d, records %+v: a batch of %d encodes to %d bytes, over the limit", limit, shape, len(batch), len(b))
			}
		}
	}
}
