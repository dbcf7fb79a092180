package client

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/brokertest"
)

// lostReplies is a client interceptor that lets every nth Produce reach
// the broker (which stores the batch) and then loses its reply, as a
// broken connection does: the client sees UNAVAILABLE and retries.
type lostReplies struct {
	mu    sync.Mutex
	calls int
	lost  int
	every int
}

func (l *lostReplies) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	if _, ok := req.(*v1.ProduceRequest); !ok || err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	if l.calls%l.every != 0 {
		return nil
	}
	l.lost++
	return status.Error(codes.Unavailable, "test: the reply was lost")
}

// TestIdempotentProducerStoresOnce: with every other produce reply lost
// after the broker stored the batch, the idempotent producer (the
// default) stores each record once, at the offset its callback reports;
// with Idempotent(false) the same losses store records twice. 1 KiB
// records, several batches per partition, on a 3-broker cluster.
func TestIdempotentProducerStoresOnce(t *testing.T) {
	cl := brokertest.StartCluster(t, 3)
	ctx := testCtx(t)
	for _, tc := range []struct {
		name       string
		idempotent bool
	}{{"idempotent", true}, {"not idempotent", false}} {
		t.Run(tc.name, func(t *testing.T) {
			lr := &lostReplies{every: 2}
			c := newTestClient(t, cl.Broker(1).APIAddr(), DialOptions(grpc.WithChainUnaryInterceptor(lr.intercept)))
			topic := fmt.Sprintf("idem-%v", tc.idempotent)
			if _, err := c.Admin().CreateTopic(ctx, topic, 2, 3, nil); err != nil {
				t.Fatal(err)
			}
			p := c.NewProducer(Idempotent(tc.idempotent), BatchMaxBytes(64<<10))
			const n = 400
			var recs []*Record
			for i := range n {
				v := make([]byte, 1024)
				copy(v, fmt.Sprintf("v%04d", i))
				recs = append(recs, &Record{Topic: topic, Key: []byte(fmt.Sprintf("k%d", i%7)), Value: v})
			}
			if err := p.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			if err := p.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if lr.lost == 0 {
				t.Fatal("no reply was lost: the test proves nothing")
			}
			got := readAll(t, c, topic, 2)
			if !tc.idempotent {
				if len(got) <= n {
					t.Fatalf("without idempotence %d lost replies stored %d records, want duplicates (more than %d)", lr.lost, len(got), n)
				}
				return
			}
			if len(got) != n {
				t.Fatalf("%d lost replies: %d records stored, want %d", lr.lost, len(got), n)
			}
			for _, r := range recs {
				at, ok := got[[2]int64{int64(r.Partition), r.Offset}]
				if !ok || at != string(r.Value[:5]) {
					t.Fatalf("record %s acknowledged at %d/%d, the log holds %q there", r.Value[:5], r.Partition, r.Offset, at)
				}
			}
		})
	}
}

// readAll reads a topic's partitions to their ends: value prefixes by
// (partition, offset).
func readAll(t *testing.T, c *Client, topic string, partitions int) map[[2]int64]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out := map[[2]int64]string{}
	hwm := map[int32]int64{}
	for p := range int32(partitions) {
		d, err := c.Admin().ListOffsets(ctx, topic, p, OffsetSpecLatest, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		hwm[p] = d.Offset
	}
	cs, err := c.NewConsumer(topic, StartAt(Earliest()), FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	for {
		done := true
		for p, h := range hwm {
			if pos := cs.Positions()[TopicPartition{Topic: topic, Partition: p}]; pos < h {
				done = false
			}
		}
		if done {
			return out
		}
		recs, err := cs.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			out[[2]int64{int64(r.Partition), r.Offset}] = string(r.Value[:5])
		}
	}
}
