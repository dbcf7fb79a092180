package broker_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/brokertest"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/client"
)

// In-process clusters: real brokers (gossip, the metadata quorum, a Raft
// group per partition, the multiplexed transport) on loopback, in one test
// process, with fast Raft timeouts.

func newClient(t *testing.T, addrs []string) *client.Client {
	t.Helper()
	c, err := client.New(addrs, client.RetryTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// produceN writes n records with values prefix-0..n-1 and returns where
// each landed.
func produceN(t *testing.T, c *client.Client, topic, prefix string, n int) map[string][2]int64 {
	t.Helper()
	p := c.NewProducer(client.DeliveryTimeout(60 * time.Second))
	defer p.Close(context.Background())
	recs := make([]*client.Record, n)
	for i := range recs {
		recs[i] = &client.Record{Topic: topic, Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprintf("%s-%d", prefix, i))}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := p.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce %s: %v", prefix, err)
	}
	out := map[string][2]int64{}
	for _, r := range recs {
		out[string(r.Value)] = [2]int64{int64(r.Partition), r.Offset}
	}
	return out
}

// readAll reads every partition of topic from the start to the high
// watermark and returns value → (partition, offset).
func readAll(t *testing.T, c *client.Client, topic string, want int) map[string][2]int64 {
	t.Helper()
	cs, err := c.NewConsumer(topic, client.StartAt(client.Earliest()))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	got := map[string][2]int64{}
	for len(got) < want {
		recs, err := cs.Poll(ctx)
		if err != nil {
			t.Fatalf("poll after %d of %d: %v", len(got), want, err)
		}
		for _, r := range recs {
			if prev, dup := got[string(r.Value)]; dup {
				t.Fatalf("value %s at %v and at %d/%d", r.Value, prev, r.Partition, r.Offset)
			}
			got[string(r.Value)] = [2]int64{int64(r.Partition), r.Offset}
		}
	}
	return got
}

func sameLanding(t *testing.T, acked, read map[string][2]int64) {
	t.Helper()
	for v, at := range acked {
		if read[v] != at {
			t.Fatalf("acknowledged %s at %v, read at %v", v, at, read[v])
		}
	}
}

// waitHealthy waits until every partition of topic has a leader and every
// replica in sync.
func waitHealthy(t *testing.T, c *client.Client, topic string) client.TopicDetail {
	t.Helper()
	var d client.TopicDetail
	eventually(t, "every partition of "+topic+" led and fully in sync", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		if d, err = c.Admin().DescribeTopic(ctx, topic); err != nil {
			return false
		}
		for _, p := range d.Partitions {
			if p.Leader == 0 || len(p.InSyncReplicas) != len(p.Replicas) {
				return false
			}
		}
		return true
	})
	return d
}

func TestClusterFormsAndReplicates(t *testing.T) {
	cl := brokertest.StartCluster(t, 3)
	c := newClient(t, cl.APIAddrs()[2:]) // any broker will do
	md, err := c.Admin().Metadata(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Brokers) != 3 || md.ControllerID == 0 || md.ClusterID == "" {
		t.Fatalf("metadata: %v", md)
	}
	for _, b := range md.Brokers {
		if b.State != "alive" {
			t.Fatalf("broker %d is %s", b.NodeID, b.State)
		}
	}
	d, err := c.Admin().CreateTopic(context.Background(), "orders", 3, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	leaders := map[uint32]int{}
	for _, p := range d.Partitions {
		if len(p.Replicas) != 3 {
			t.Fatalf("partition %d replicas %v", p.Partition, p.Replicas)
		}
		leaders[p.Replicas[0]]++
	}
	if len(leaders) != 3 {
		t.Fatalf("preferred leaders not spread: %v", leaders)
	}
	acked := produceN(t, c, "orders", "v", 600)
	sameLanding(t, acked, readAll(t, c, "orders", 600))
	d = waitHealthy(t, c, "orders")
	var total int64
	for _, p := range d.Partitions {
		total += p.HighWatermark
	}
	if total != 600 {
		t.Fatalf("high watermarks sum to %d, want 600", total)
	}
}

// leaderOf returns the node leading topic/p as the cluster reports it.
func leaderOf(t *testing.T, c *client.Client, topic string, p int32) uint32 {
	t.Helper()
	var leader uint32
	eventually(t, "a leader for the partition", func() bool {
		d, err := c.Admin().DescribeTopic(context.Background(), topic)
		if err != nil {
			return false
		}
		leader = d.Partitions[p].Leader
		return leader != 0
	})
	return leader
}

func TestLeaderFailoverAndCatchUp(t *testing.T) {
	cl := brokertest.StartCluster(t, 3)
	c := newClient(t, cl.APIAddrs())
	if _, err := c.Admin().CreateTopic(context.Background(), "t", 1, 3, nil); err != nil {
		t.Fatal(err)
	}
	acked := produceN(t, c, "t", "before", 200)
	old := leaderOf(t, c, "t", 0)
	cl.Stop(old)

	// Produce resumes through the survivors: the client finds the new
	// leader by itself.
	start := time.Now()
	for k, v := range produceN(t, c, "t", "after", 200) {
		acked[k] = v
	}
	t.Logf("leader %d stopped; 200 records committed by the survivors %s later", old, time.Since(start).Round(time.Millisecond))
	if now := leaderOf(t, c, "t", 0); now == old {
		t.Fatalf("stopped broker %d still reported as leader", old)
	}

	// The old leader comes back, catches up from the new leader's log, and
	// gets its preferred leadership back.
	cl.Restart(old)
	waitHealthy(t, c, "t")
	sameLanding(t, acked, readAll(t, c, "t", 400))
	d, err := c.Admin().DescribeTopic(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	if pref := d.Partitions[0].Replicas[0]; pref == old {
		eventually(t, "leadership back on the preferred replica", func() bool { return leaderOf(t, c, "t", 0) == old })
	}
}

func TestIsolatedLeaderCannotCommit(t *testing.T) {
	cl := brokertest.StartCluster(t, 3)
	c := newClient(t, cl.APIAddrs())
	if _, err := c.Admin().CreateTopic(context.Background(), "t", 1, 3, nil); err != nil {
		t.Fatal(err)
	}
	acked := produceN(t, c, "t", "before", 50)
	old := leaderOf(t, c, "t", 0)
	iso := cl.Broker(old)
	// Cut the leader's Raft traffic to and from the other two.
	var others []string
	for id := uint32(1); id <= 3; id++ {
		if id != old {
			others = append(others, cl.Broker(id).APIAddr())
			iso.Mux().Block(raftAddr(cl.Broker(id).RaftAddr()))
			cl.Broker(id).Mux().Block(raftAddr(iso.RaftAddr()))
		}
	}
	// Once it has heard from no majority for a heartbeat timeout, the
	// isolated leader serves no reads (they could be stale), although
	// raft's lease (10 heartbeat timeouts) keeps it leader longer.
	raw := dial(t, iso.APIAddr())
	eventually(t, "the isolated leader refuses fetches", func() bool {
		fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		resp, err := raw.Fetch(fctx, &v1.FetchRequest{Partitions: []*v1.FetchPartition{{Topic: "t", Partition: 0, Offset: 0}}, MaxBytes: 1 << 20})
		return err == nil && len(resp.Partitions) == 1 && resp.Partitions[0].Error.GetCode() == v1.ErrorCode_ERROR_CODE_NOT_LEADER
	})
	st, err := iso.ReplicaStatus(context.Background(), &v1.ReplicaStatusRequest{})
	if err != nil || len(st.Replicas) != 1 || st.Replicas[0].Role != "leader" {
		t.Fatalf("the refusal came from raft stepping down, not from the broker (status %v, %v): "+
			"the broker should refuse after 1 heartbeat timeout, raft after 10", st, err)
	}
	// Straight to the isolated leader, a produce cannot commit.
	pctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	resp, err := raw.Produce(pctx, &v1.ProduceRequest{Topic: "t", Partitions: []*v1.ProducePartition{{Partition: 0, Batches: encode(t, "split-brain")}}})
	cancel()
	if err == nil && resp.Partitions[0].Error == nil {
		t.Fatalf("an isolated leader acknowledged a write: %v", resp)
	}
	// The majority elects a new leader and commits.
	cm := newClient(t, others)
	for k, v := range produceN(t, cm, "t", "majority", 100) {
		acked[k] = v
	}
	// The new leader was elected by the brokers' elector once the old
	// one's broker fell silent, not by raft's own timers (20 heartbeat
	// timeouts): those elections are counted.
	var elections float64
	for id := uint32(1); id <= 3; id++ {
		if id != old {
			elections += metricValue(t, cl.Broker(id).HTTPAddr(), "strata_early_elections_total")
		}
	}
	if elections < 1 {
		t.Fatal("the majority elected a leader, but not through the broker's elector")
	}
	// Healed, the old leader steps down and its uncommitted entry is gone.
	for id := uint32(1); id <= 3; id++ {
		cl.Broker(id).Mux().UnblockAll()
	}
	waitHealthy(t, c, "t")
	got := readAll(t, c, "t", 150)
	sameLanding(t, acked, got)
	if _, ok := got["split-brain"]; ok {
		t.Fatal("the isolated leader's write became visible")
	}
}

func TestFourthBrokerJoins(t *testing.T) {
	cl := brokertest.StartCluster(t, 3)
	b4 := cl.Add()
	c := newClient(t, []string{b4.APIAddr()})
	eventually(t, "four live brokers in the metadata", func() bool {
		md, err := c.Admin().Metadata(context.Background())
		if err != nil {
			return false
		}
		alive := 0
		for _, b := range md.Brokers {
			if b.State == "alive" {
				alive++
			}
		}
		return alive == 4
	})
	// Placement uses the new broker: 4 partitions × RF 3 over 4 brokers.
	d, err := c.Admin().CreateTopic(context.Background(), "wide", 4, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	var on4 int
	for _, p := range d.Partitions {
		for _, r := range p.Replicas {
			if r == 4 {
				on4++
			}
		}
	}
	if on4 != 3 {
		t.Fatalf("broker 4 holds %d of 12 replicas, want 3", on4)
	}
	acked := produceN(t, c, "wide", "v", 200)
	sameLanding(t, acked, readAll(t, c, "wide", 200))
	// Unknown broker ids and bad requests are refused, not guessed.
	_, err = c.Admin().CreateTopic(context.Background(), "too-wide", 1, 5, nil)
	if !errors.Is(err, apierr.ErrInvalidReplication) {
		t.Fatalf("RF 5 on 4 brokers: %v", err)
	}
	ids := []int{}
	for _, p := range d.Partitions {
		ids = append(ids, int(p.Leader))
	}
	sort.Ints(ids)
	t.Logf("leaders of the new topic: %v", ids)
}
