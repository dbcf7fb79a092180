package client

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/brokertest"
)

// Admin's answers come back as this package's types, with the broker's
// values in the right fields: a described topic, the cluster metadata, a
// listed offset, a described group and its committed offsets.
func TestAdminReturnsClientTypes(t *testing.T) {
	addr := brokertest.Start(t)
	c := newTestClient(t, addr, RetryTimeout(20*time.Second))
	ctx := testCtx(t)
	a := c.Admin()
	created, err := a.CreateTopic(ctx, "described", 2, 1, map[string]string{"retention.ms": "3600000"})
	if err != nil {
		t.Fatal(err)
	}
	if created.Name != "described" || len(created.Partitions) != 2 {
		t.Fatalf("created %+v", created)
	}
	produceTo(t, c, "described", 3, 0)

	md, err := a.Metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Brokers) != 1 || md.Brokers[0].NodeID == 0 || md.Brokers[0].APIAddr == "" || md.Brokers[0].State != "alive" {
		t.Fatalf("metadata brokers %+v", md.Brokers)
	}
	node := md.Brokers[0].NodeID
	if md.ClusterID == "" || md.ControllerID != node {
		t.Errorf("metadata: cluster %q, controller %d; want an id and controller %d", md.ClusterID, md.ControllerID, node)
	}
	i := slices.IndexFunc(md.Topics, func(tm TopicMetadata) bool { return tm.Name == "described" })
	if i < 0 || md.Topics[i].Err != nil || len(md.Topics[i].Partitions) != 2 ||
		md.Topics[i].Partitions[1].Leader != node || !slices.Equal(md.Topics[i].Partitions[1].Replicas, []uint32{node}) {
		t.Errorf("metadata of the topic: %+v", md.Topics)
	}

	d, err := a.DescribeTopic(ctx, "described")
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "described" || d.ReplicationFactor != 1 || len(d.Partitions) != 2 {
		t.Fatalf("described %+v", d)
	}
	for i, p := range d.Partitions {
		hw := int64(0)
		if i == 0 {
			hw = 3
		}
		if p.Partition != int32(i) || p.Leader != node || !slices.Equal(p.Replicas, []uint32{node}) ||
			!slices.Equal(p.InSyncReplicas, []uint32{node}) || p.HighWatermark != hw || p.LogEndOffset != hw ||
			p.LogStartOffset != 0 || len(p.Lagging) != 0 {
			t.Errorf("partition %d: %+v; want leader %d, high watermark %d", i, p, node, hw)
		}
	}
	if e, ok := d.Config("retention.ms"); !ok || e.Value != "3600000" || e.Default {
		t.Errorf("retention.ms: %+v %v; want 3600000 set on the topic", e, ok)
	}
	if !slices.ContainsFunc(d.Configs, func(e ConfigEntry) bool { return e.Default }) {
		t.Errorf("no config marked default: %+v", d.Configs)
	}

	lo, err := a.ListOffsets(ctx, "described", 0, OffsetSpecLatest, time.Time{})
	if err != nil || lo.Topic != "described" || lo.Partition != 0 || lo.Offset != 3 || !lo.Found || !lo.Timestamp.IsZero() {
		t.Errorf("latest offset: %+v %v", lo, err)
	}

	gc, err := c.NewGroupConsumer("readers", Topics("described"), DisableAutoCommit(),
		FetchOpts(FetchMaxWait(50*time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close(context.Background())
	pollUntil(t, gc, "the three records", func(all []*Record) bool { return len(all) == 3 })
	before := time.Now()
	if err := gc.CommitSync(ctx); err != nil {
		t.Fatal(err)
	}
	member, epoch := gc.Member()

	g, err := a.DescribeGroup(ctx, "readers")
	if err != nil {
		t.Fatal(err)
	}
	if g.Group != "readers" || g.State != "stable" || g.Coordinator != node || g.TotalLag != 0 || len(g.Members) != 1 {
		t.Fatalf("described group %+v", g)
	}
	m := g.Members[0]
	want := []TopicPartition{{"described", 0}, {"described", 1}}
	if m.MemberID != member || m.MemberEpoch != epoch || m.ClientID != "strata-go" ||
		!slices.Equal(m.Topics, []string{"described"}) || !slices.Equal(m.Assignment, want) {
		t.Errorf("member %+v; want %s at epoch %d owning %v", m, member, epoch, want)
	}
	j := slices.IndexFunc(g.Partitions, func(p GroupPartitionLag) bool { return p.Partition == 0 })
	if j < 0 || g.Partitions[j] != (GroupPartitionLag{Topic: "described", Partition: 0, Committed: 3, LogEnd: 3, Lag: 0, MemberID: member}) {
		t.Errorf("group partitions %+v", g.Partitions)
	}

	offs, err := a.FetchOffsets(ctx, "readers", TopicPartition{"described", 0})
	if err != nil || len(offs) != 1 {
		t.Fatalf("fetch offsets: %+v %v", offs, err)
	}
	if o := offs[0]; o.Topic != "described" || o.Partition != 0 || o.Offset != 3 ||
		o.CommitTime.Before(before.Add(-time.Second)) || o.CommitTime.After(time.Now().Add(time.Second)) {
		t.Errorf("committed %+v; want offset 3 committed at about %v", o, before)
	}
}
