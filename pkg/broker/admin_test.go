package broker_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/brokertest"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/client"
)

// Partition admin on in-process clusters: transfer-leader, move,
// decommission.

// waitInSync waits until every partition of topic has a leader and its
// in-sync replicas are all its replicas, and returns the description.
func adminWaitInSync(t *testing.T, a *client.Admin, topic string) client.TopicDetail {
	t.Helper()
	var d client.TopicDetail
	eventually(t, topic+" fully in sync", func() bool {
		var err error
		if d, err = a.DescribeTopic(ctx(t), topic); err != nil {
			return false
		}
		for _, p := range d.Partitions {
			if p.Leader == 0 || !slices.Equal(p.InSyncReplicas, slices.Sorted(slices.Values(p.Replicas))) {
				return false
			}
		}
		return true
	})
	return d
}

// produceValues writes the values to partition 0 one batch at a time and
// returns those acknowledged.
func adminProduce(ctx context.Context, c *client.Client, topic string, values ...string) []string {
	p := c.NewProducer(client.DeliveryTimeout(20*time.Second), client.RecordPartitioner(client.ManualPartitioner()))
	defer p.Close(context.Background())
	recs := make([]*client.Record, len(values))
	for i, v := range values {
		recs[i] = &client.Record{Topic: topic, Partition: 0, Value: []byte(v)}
	}
	var acked []string
	for _, r := range p.ProduceSync(ctx, recs...) {
		if r.Err == nil {
			acked = append(acked, string(r.Record.Value))
		}
	}
	return acked
}

// readAll consumes partition 0 from the start up to its high watermark.
func adminReadAll(t *testing.T, c *client.Client, topic string) map[string]bool {
	t.Helper()
	cs, err := c.NewConsumer(topic, client.Partitions(0), client.StartAt(client.Earliest()))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	got := map[string]bool{}
	deadline := time.Now().Add(20 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx(t), time.Second)
		recs, err := cs.Poll(pctx)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("consume: %v", err)
		}
		for _, r := range recs {
			got[string(r.Value)] = true
		}
		tp := client.TopicPartition{Topic: topic, Partition: 0}
		if _, known := cs.HighWatermarks()[tp]; known && cs.Lag()[tp] == 0 || time.Now().After(deadline) {
			return got
		}
	}
}

func TestTransferLeader(t *testing.T) {
	c := brokertest.StartCluster(t, 3)
	cl := newClient(t, c.APIAddrs())
	a := cl.Admin()
	if _, err := a.CreateTopic(ctx(t), "tl", 1, 3, nil); err != nil {
		t.Fatal(err)
	}
	leader := adminWaitInSync(t, a, "tl").Partitions[0].Leader
	to := leader%3 + 1
	via := to%3 + 1 // neither leads nor receives: the call is forwarded
	vc := newClient(t, []string{c.Broker(via).APIAddr()})
	got, err := vc.Admin().TransferLeader(ctx(t), "tl", 0, to)
	if err != nil || got != to {
		t.Fatalf("transfer from %d to %d via %d: leader %d, %v", leader, to, via, got, err)
	}
	if acked := adminProduce(ctx(t), cl, "tl", "after-transfer"); len(acked) != 1 {
		t.Fatal("produce after the transfer failed")
	}
	if !adminReadAll(t, cl, "tl")["after-transfer"] {
		t.Fatal("record produced after the transfer is not readable")
	}

	for _, tc := range []struct {
		topic string
		p     int32
		to    uint32
		want  *apierr.Error
	}{
		{"tl", 0, 9, apierr.ErrInvalidRequest},
		{"ghost", 0, 1, apierr.ErrUnknownTopic},
		{"tl", 3, 1, apierr.ErrUnknownPartition},
	} {
		_, err := a.TransferLeader(ctx(t), tc.topic, tc.p, tc.to)
		if !errors.Is(err, tc.want) {
			t.Errorf("transfer %s/%d to %d: %v, want %v", tc.topic, tc.p, tc.to, err, tc.want.Code)
		}
	}

	// Bad moves are refused before anything changes.
	for _, tc := range []struct {
		replicas []uint32
		want     *apierr.Error
	}{
		{nil, apierr.ErrInvalidRequest},
		{[]uint32{1, 1, 2}, apierr.ErrInvalidRequest},
		{[]uint32{1, 2, 9}, apierr.ErrInvalidReplication},
	} {
		if err := a.MovePartition(ctx(t), "tl", 0, tc.replicas, nil); !errors.Is(err, tc.want) {
			t.Errorf("move to %v: %v, want %v", tc.replicas, err, tc.want.Code)
		}
	}
	// No fourth broker to take broker 1's replicas: nothing moves.
	if err := a.DecommissionBroker(ctx(t), 1, nil); !errors.Is(err, apierr.ErrInvalidReplication) {
		t.Errorf("decommission with no spare broker: %v", err)
	}
	if d, _ := a.DescribeTopic(ctx(t), "tl"); !slices.Equal(d.Partitions[0].Replicas, []uint32{1, 2, 3}) && !slices.Equal(slices.Sorted(slices.Values(d.Partitions[0].Replicas)), []uint32{1, 2, 3}) {
		t.Errorf("replicas changed by a refused decommission: %v", d.Partitions[0].Replicas)
	}
}

func TestMovePartitionWhileProducing(t *testing.T) {
	c := brokertest.StartCluster(t, 3)
	cl := newClient(t, c.APIAddrs())
	a := cl.Admin()
	if _, err := a.CreateTopic(ctx(t), "mv", 1, 3, nil); err != nil {
		t.Fatal(err)
	}
	adminWaitInSync(t, a, "mv")
	c.Add()

	var before []string
	for i := range 300 {
		before = append(before, fmt.Sprintf("before-%d", i))
	}
	acked := adminProduce(ctx(t), cl, "mv", before...)
	if len(acked) != len(before) {
		t.Fatalf("%d of %d records acknowledged before the move", len(acked), len(before))
	}

	// Produce throughout the move.
	pctx, stop := context.WithCancel(ctx(t))
	var wg sync.WaitGroup
	var mu sync.Mutex
	wg.Go(func() {
		for i := 0; pctx.Err() == nil; i++ {
			got := adminProduce(pctx, cl, "mv", fmt.Sprintf("during-%d", i))
			mu.Lock()
			acked = append(acked, got...)
			mu.Unlock()
		}
	})
	var steps []string
	err := a.MovePartition(ctx(t), "mv", 0, []uint32{2, 3, 4}, func(p client.MoveProgress) { steps = append(steps, p.Step) })
	stop()
	wg.Wait()
	if err != nil {
		t.Fatalf("move: %v (steps %q)", err, steps)
	}
	for _, want := range []string{"adding 4 as non-voter", "promoting 4", "removing 1", "done"} {
		if !slices.Contains(steps, want) {
			t.Errorf("steps %q lack %q", steps, want)
		}
	}

	d := adminWaitInSync(t, a, "mv")
	if p := d.Partitions[0]; !slices.Equal(p.Replicas, []uint32{2, 3, 4}) {
		t.Fatalf("replicas after the move: %v", p.Replicas)
	}
	eventually(t, "broker 1 deletes its copy", func() bool {
		dirs, _ := filepath.Glob(filepath.Join(c.Configs[0].DataDir, "topics", "mv-*", "0"))
		return len(dirs) == 0
	})
	got := adminReadAll(t, cl, "mv")
	var during int
	for _, v := range acked {
		if !got[v] {
			t.Errorf("acknowledged record %q is lost", v)
		}
		during++
	}
	t.Logf("%d acknowledged records readable after the move; steps %q", during, steps)

	// Re-running the same move is a no-op that succeeds.
	steps = nil
	if err := a.MovePartition(ctx(t), "mv", 0, []uint32{2, 3, 4}, func(p client.MoveProgress) { steps = append(steps, p.Step) }); err != nil {
		t.Fatalf("re-run: %v", err)
	}
	if slices.ContainsFunc(steps, func(s string) bool { return s != "done" && s != "shrinking replicas to [2 3 4]" }) {
		t.Errorf("re-run did work again: %q", steps)
	}
}

func TestDecommissionBroker(t *testing.T) {
	c := brokertest.StartCluster(t, 4)
	cl := newClient(t, c.APIAddrs())
	a := cl.Admin()
	if _, err := a.CreateTopic(ctx(t), "dc", 4, 3, nil); err != nil {
		t.Fatal(err)
	}
	before := adminWaitInSync(t, a, "dc")
	var on1 int32
	for _, p := range before.Partitions {
		if slices.Contains(p.Replicas, 1) {
			on1++
		}
	}
	if acked := adminProduce(ctx(t), cl, "dc", "x", "y", "z"); len(acked) != 3 {
		t.Fatal("produce failed")
	}
	var last *client.MoveProgress
	if err := a.DecommissionBroker(ctx(t), 1, func(p client.MoveProgress) { last = &p }); err != nil {
		t.Fatalf("decommission: %v", err)
	}
	if last == nil || last.Step != "done" || last.Done != on1 || last.Total != on1 {
		t.Fatalf("last progress %v, want done %d/%d", last, on1, on1)
	}
	after := adminWaitInSync(t, a, "dc")
	for i, p := range after.Partitions {
		if slices.Contains(p.Replicas, 1) || len(p.Replicas) != 3 {
			t.Errorf("partition %d: replicas %v", i, p.Replicas)
		}
		if !slices.Contains(before.Partitions[i].Replicas, 1) && !slices.Equal(p.Replicas, before.Partitions[i].Replicas) {
			t.Errorf("partition %d moved without need: %v → %v", i, before.Partitions[i].Replicas, p.Replicas)
		}
	}
	got := adminReadAll(t, cl, "dc")
	for _, v := range []string{"x", "y", "z"} {
		if !got[v] {
			t.Errorf("record %q lost", v)
		}
	}
}

// A move stopped halfway (the caller gave up after promoting the new
// replica) leaves the partition serving with the extra replica; running
// the same move again finishes it. Then the partition moves back onto the
// broker it left, which must join as a fresh replica.
func TestMoveInterruptedThenRerunAndBack(t *testing.T) {
	c := brokertest.StartCluster(t, 3)
	cl := newClient(t, c.APIAddrs())
	a := cl.Admin()
	if _, err := a.CreateTopic(ctx(t), "ir", 1, 3, nil); err != nil {
		t.Fatal(err)
	}
	adminWaitInSync(t, a, "ir")
	c.Add()
	if acked := adminProduce(ctx(t), cl, "ir", "a", "b"); len(acked) != 2 {
		t.Fatal("produce failed")
	}

	mctx, cancel := context.WithCancel(ctx(t))
	err := a.MovePartition(mctx, "ir", 0, []uint32{2, 3, 4}, func(p client.MoveProgress) {
		if p.Step == "promoting 4" {
			cancel()
		}
	})
	cancel()
	if err == nil {
		t.Fatal("a cancelled move succeeded")
	}
	d, err := a.DescribeTopic(ctx(t), "ir")
	if err != nil || len(d.Partitions[0].Replicas) != 4 {
		t.Fatalf("after the interrupted move: %v %v", d, err)
	}
	if acked := adminProduce(ctx(t), cl, "ir", "c"); len(acked) != 1 {
		t.Fatal("produce after the interrupted move failed")
	}
	if err := a.MovePartition(ctx(t), "ir", 0, []uint32{2, 3, 4}, nil); err != nil {
		t.Fatalf("re-run: %v", err)
	}
	if d := adminWaitInSync(t, a, "ir"); !slices.Equal(d.Partitions[0].Replicas, []uint32{2, 3, 4}) {
		t.Fatalf("replicas after the re-run: %v", d.Partitions[0].Replicas)
	}

	if err := a.MovePartition(ctx(t), "ir", 0, []uint32{1, 2, 3}, nil); err != nil {
		t.Fatalf("move back: %v", err)
	}
	if d := adminWaitInSync(t, a, "ir"); !slices.Equal(d.Partitions[0].Replicas, []uint32{1, 2, 3}) {
		t.Fatalf("replicas after moving back: %v", d.Partitions[0].Replicas)
	}
	if acked := adminProduce(ctx(t), cl, "ir", "d"); len(acked) != 1 {
		t.Fatal("produce after moving back failed")
	}
	got := adminReadAll(t, cl, "ir")
	for _, v := range []string{"a", "b", "c", "d"} {
		if !got[v] {
			t.Errorf("record %q lost", v)
		}
	}
}

// VerifyPartition, asked of a broker that holds no replica, compares the
// three replicas of a partition written through the client and finds them
// equal, over every record acknowledged before it.
func TestVerifyPartitionOnACluster(t *testing.T) {
	c := brokertest.StartCluster(t, 4)
	cl := newClient(t, c.APIAddrs())
	a := cl.Admin()
	if _, err := a.CreateTopic(ctx(t), "vp", 2, 3, nil); err != nil {
		t.Fatal(err)
	}
	produceN(t, cl, "vp", "v", 400)
	d := adminWaitInSync(t, a, "vp")
	for _, p := range d.Partitions {
		via := uint32(0)
		for id := uint32(1); id <= 4; id++ {
			if !slices.Contains(p.Replicas, id) {
				via = id
			}
		}
		r, err := newClient(t, []string{c.Broker(via).APIAddr()}).Admin().VerifyPartition(ctx(t), "vp", p.Partition)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Agree || r.FirstDifference != -1 || len(r.Replicas) != 3 {
			t.Fatalf("vp/%d: %v", p.Partition, r)
		}
		for _, rc := range r.Replicas {
			if rc.Error != "" || rc.CRC != r.Replicas[0].CRC {
				t.Fatalf("vp/%d replica %d: %v", p.Partition, rc.NodeID, rc)
			}
		}
		if r.Batches == 0 || r.ToOffset < r.FromOffset {
			t.Fatalf("vp/%d compared nothing: %v", p.Partition, r)
		}
	}
	if _, err := a.VerifyPartition(ctx(t), "vp", 7); !errors.Is(err, apierr.ErrUnknownPartition) {
		t.Fatalf("verify of a partition that does not exist: %v", err)
	}
}
