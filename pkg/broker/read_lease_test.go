package broker_test

import (
	"context"
	"testing"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/brokertest"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/broker"
)

// TestCutOffCoordinatorStopsAnswering: the group coordinator answers from
// memory, so once its broker is cut off from the offsets partition's other
// replicas it must stop answering within its read lease (a heartbeat
// timeout), not when raft's own lease (ten of them) deposes it: by then the
// others have elected a coordinator of their own.
func TestCutOffCoordinatorStopsAnswering(t *testing.T) {
	cl := brokertest.StartCluster(t, 3, func(cfg *broker.Config) { cfg.OffsetsPartitions = 1 })
	addrs := cl.APIAddrs()
	if _, err := newClient(t, addrs).Admin().CreateTopic(ctx(t), "d", 1, 3, nil); err != nil {
		t.Fatal(err)
	}
	m := &member{t: t, addrs: addrs, group: "leased", topic: "d"}
	settle(t, m)
	fc, err := dial(t, addrs[0]).FindCoordinator(ctx(t), &v1.FindCoordinatorRequest{Group: "leased"})
	if err != nil {
		t.Fatal(err)
	}
	coord := dial(t, fc.ApiAddr)
	if _, err := coord.FetchOffsets(ctx(t), &v1.FetchOffsetsRequest{Group: "leased"}); err != nil {
		t.Fatalf("the coordinator does not answer before the cut: %v", err)
	}

	iso := cl.Broker(fc.NodeId)
	for id := uint32(1); id <= 3; id++ {
		if id != fc.NodeId {
			iso.Mux().Block(raftAddr(cl.Broker(id).RaftAddr()))
			cl.Broker(id).Mux().Block(raftAddr(iso.RaftAddr()))
		}
	}
	cut := time.Now()
	eventually(t, "the cut-off coordinator refusing", func() bool {
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := coord.FetchOffsets(rctx, &v1.FetchOffsetsRequest{Group: "leased"})
		return err != nil && apierr.FromError(apierr.FromStatus(err)).Code == v1.ErrorCode_ERROR_CODE_NOT_COORDINATOR
	})
	refused := time.Since(cut)
	st, err := iso.ReplicaStatus(context.Background(), &v1.ReplicaStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	leads := false
	for _, r := range st.Replicas {
		if r.Topic == "__consumer_offsets" && r.Role == "leader" {
			leads = true
		}
	}
	if !leads {
		t.Fatalf("raft already deposed the cut-off coordinator (%s after the cut): the refusal shows nothing about the read lease", refused)
	}
	t.Logf("the cut-off coordinator refused %s after the cut; its raft still calls it leader", refused.Round(time.Millisecond))
	for id := uint32(1); id <= 3; id++ {
		cl.Broker(id).Mux().UnblockAll()
	}
}

// TestReadsConfirmLeasesTogether: a read of many idle partitions, whose
// leases have all lapsed, confirms them all at once (one heartbeat round),
// not one after another (a round each: seconds for a few hundred).
func TestReadsConfirmLeasesTogether(t *testing.T) {
	cl := brokertest.StartCluster(t, 3)
	c := newClient(t, cl.APIAddrs())
	if _, err := c.Admin().CreateTopic(ctx(t), "idle", 300, 3, nil); err != nil {
		t.Fatal(err)
	}
	d := waitHealthy(t, c, "idle")
	req := &v1.ListOffsetsRequest{}
	for _, p := range d.Partitions {
		if p.Leader == 1 {
			req.Partitions = append(req.Partitions, &v1.ListOffsetsPartition{Topic: "idle", Partition: p.Partition, Spec: v1.OffsetSpec_OFFSET_SPEC_LATEST})
		}
	}
	if len(req.Partitions) < 50 {
		t.Fatalf("broker 1 leads %d partitions; the test needs many", len(req.Partitions))
	}
	// Idle for a few heartbeat timeouts: every lease lapses (the point of
	// the test, not a wait for a condition).
	time.Sleep(3 * brokertest.HeartbeatTimeout)
	start := time.Now()
	resp, err := dial(t, cl.Broker(1).APIAddr()).ListOffsets(ctx(t), req)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.Partitions {
		if r.Error != nil {
			t.Fatalf("partition %d: %v", r.Partition, r.Error)
		}
	}
	// One after another, each waits for a heartbeat round (a third of a
	// heartbeat timeout): len/3 heartbeat timeouts in all.
	if limit := 5 * brokertest.HeartbeatTimeout; took > limit {
		t.Fatalf("list offsets of %d idle partitions took %s, more than %s: leases confirmed one after another", len(req.Partitions), took, limit)
	}
	t.Logf("list offsets of %d idle partitions: %s", len(req.Partitions), took.Round(time.Millisecond))
}
