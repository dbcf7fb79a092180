package client

// DeleteRecords, reset policies and leader hints against real in-process
// brokers.

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/brokertest"
	"github.com/stratalog/strata/pkg/apierr"
)

func TestBrokerDeleteRecords(t *testing.T) {
	addr := brokertest.Start(t)
	c := newTestClient(t, addr)
	ctx := testCtx(t)
	createTopic(t, c, "t", 2)
	produceN(t, c, "t", 1, 5)
	p := c.NewProducer(RecordPartitioner(ManualPartitioner()))
	for i := range 3 {
		if err := p.ProduceSync(ctx, &Record{Topic: "t", Partition: 1, Value: fmt.Appendf(nil, "%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	p.Close(ctx)

	starts, err := c.Admin().DeleteRecords(ctx, "t", map[int32]int64{0: 3, 1: BeforeHighWatermark})
	if err != nil || starts[0] != 3 || starts[1] != 3 {
		t.Fatalf("DeleteRecords: %v, %v; want 0:3 1:3", starts, err)
	}
	d, err := c.Admin().DescribeTopic(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if ls := d.Partitions[0].LogStartOffset; ls != 3 {
		t.Errorf("describe: log start %d, want 3", ls)
	}
	// Again, lower: nothing changes.
	if starts, err := c.Admin().DeleteRecords(ctx, "t", map[int32]int64{0: 1}); err != nil || starts[0] != 3 {
		t.Errorf("DeleteRecords below the log start: %v, %v; want 0:3", starts, err)
	}
	if _, err := c.Admin().DeleteRecords(ctx, "t", map[int32]int64{0: 99}); !errors.Is(err, apierr.ErrOffsetOutOfRange) {
		t.Errorf("DeleteRecords past the high watermark: %v", err)
	}

	cs, err := c.NewConsumer("t", Partitions(0), StartAt(AtOffset(0)), ResetPolicy(NoReset()))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	_, err = cs.Poll(ctx)
	var ae *apierr.Error
	if !errors.As(err, &ae) || ae.Code != v1.ErrorCode_ERROR_CODE_OFFSET_OUT_OF_RANGE || ae.LogStartOffset != 3 || ae.HighWatermark != 5 {
		t.Errorf("poll a deleted position with NoReset: %v", err)
	}
	cs2, err := c.NewConsumer("t", Partitions(0), StartAt(AtOffset(0)))
	if err != nil {
		t.Fatal(err)
	}
	defer cs2.Close()
	if r, err := cs2.Next(ctx); err != nil || r.Offset != 3 {
		t.Errorf("first record after the reset: %v, %v; want offset 3", r, err)
	}

	if _, err := c.Admin().CreateTopic(ctx, "imm", 1, 1, map[string]string{"immutable": "true"}); err != nil {
		t.Fatal(err)
	}
	produceN(t, c, "imm", 1, 1)
	if starts, err := c.Admin().DeleteRecords(ctx, "imm", map[int32]int64{0: BeforeHighWatermark}); !errors.Is(err, apierr.ErrPolicyViolation) || len(starts) != 0 {
		t.Errorf("DeleteRecords on an immutable topic: %v, %v", starts, err)
	}
}

// After a leader change the old leader's NOT_LEADER names the new one, and
// the client goes there without reloading metadata. An interceptor logs
// the calls the client makes after the transfer.
func TestBrokerLeaderHint(t *testing.T) {
	cl := brokertest.StartCluster(t, 3)
	var (
		mu    sync.Mutex
		calls []string // "Method@node: error"
		log   bool
	)
	node := make(map[string]uint32)
	for _, b := range cl.Brokers {
		node[b.APIAddr()] = b.NodeID()
	}
	icpt := grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		ret := err
		mu.Lock()
		if log {
			if pr, ok := reply.(*v1.ProduceResponse); ok && err == nil && len(pr.GetPartitions()) == 1 {
				e := pr.GetPartitions()[0].GetError()
				err = fmt.Errorf("%v (leader %d at node %d)", apierr.FromProto(e), e.GetLeaderId(), node[e.GetLeaderAddr()])
			}
			calls = append(calls, fmt.Sprintf("%s@%d: %v", path.Base(method), node[cc.Target()], err))
		}
		mu.Unlock()
		return ret
	})
	c := newTestClient(t, cl.Broker(1).APIAddr(), RetryTimeout(20*time.Second), DialOptions(icpt))
	ctx := testCtx(t)
	// A retried create (its first reply lost to a new cluster's elections)
	// finds its own topic.
	if _, err := c.Admin().CreateTopic(ctx, "h", 1, 3, nil); err != nil && !errors.Is(err, apierr.ErrTopicExists) {
		t.Fatal(err)
	}
	p := c.NewProducer()
	defer p.Close(ctx)
	if err := p.ProduceSync(ctx, &Record{Topic: "h", Value: []byte("before")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// Another client moves the leader, so this one's metadata stays as it
	// was. Just after a transfer the old leader may not know its successor
	// yet (its NOT_LEADER names none, and the client reloads metadata), so
	// the leader moves until a hint has been seen, up to five times.
	admin := newTestClient(t, cl.Broker(1).APIAddr(), RetryTimeout(20*time.Second))
	hints := 0
	for round := 0; round < 5 && hints == 0; round++ {
		s, _ := c.meta.current()
		to := s.topics["h"].leaders[0]%3 + 1
		if _, err := admin.Admin().TransferLeader(ctx, "h", 0, to); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		calls, log = nil, true
		mu.Unlock()
		if err := p.ProduceSync(ctx, &Record{Topic: "h", Value: []byte("after")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		log = false
		// Each NOT_LEADER that names the leader is followed by a produce
		// to that leader: no Metadata call, no other broker.
		for i, call := range calls {
			var at, leader uint32
			j := strings.LastIndex(call, "(leader ")
			if j < 0 {
				continue
			}
			if n, _ := fmt.Sscanf(call[j:], "(leader %d at node %d)", &leader, &at); n != 2 || leader == 0 {
				continue
			}
			hints++
			if i+1 == len(calls) || !strings.HasPrefix(calls[i+1], fmt.Sprintf("Produce@%d: ", leader)) {
				t.Errorf("round %d: after a hint to %d, not a produce there:\n%s", round, leader, strings.Join(calls, "\n"))
			}
		}
		// (The rebalancer may already have handed leadership back to the
		// preferred replica, so where the produce ended is not checked.)
		mu.Unlock()
	}
	if hints == 0 {
		t.Error("no NOT_LEADER named the new leader in five transfers")
	}
}
