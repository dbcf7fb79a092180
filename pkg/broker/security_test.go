package broker_test

import (
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/brokertest"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/broker"
	"github.com/stratalog/strata/pkg/metadata"
)

// Hardening against bad input (issue 12): forged metadata changes,
// path-traversal names and internal topics, over gRPC against a real
// broker.

// TestForgedMetadataChangesRefused sends ApplyMetadata, as any client that
// reaches the API port can, with changes no broker would propose: the
// state machine refuses each, nothing is created outside the data dir and
// the broker keeps serving.
func TestForgedMetadataChangesRefused(t *testing.T) {
	root := t.TempDir()
	b := brokertest.StartBroker(t, func(c *broker.Config) { c.DataDir = filepath.Join(root, "data") })
	cc := grpcConn(t, b.APIAddr())
	c, ic := v1.NewStrataClient(cc), v1.NewStrataInternalClient(cc)
	if _, err := c.CreateTopic(ctx(t), &v1.CreateTopicRequest{Name: "orders", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	forged := []struct {
		name string
		c    metadata.Change
		want *apierr.Error
	}{
		{"traversal name", metadata.CreateTopic{Topic: metadata.Topic{Name: "../../escaped", ID: "ab", Partitions: 1, ReplicationFactor: 1,
			Assignments: []metadata.Assignment{{Replicas: []uint32{1}, Initial: []uint32{1}}}}}, apierr.ErrInvalidTopic},
		{"traversal id", metadata.CreateTopic{Topic: metadata.Topic{Name: "x", ID: "/../../../escaped", Partitions: 1, ReplicationFactor: 1,
			Assignments: []metadata.Assignment{{Replicas: []uint32{1}, Initial: []uint32{1}}}}}, apierr.ErrInvalidRequest},
		{"empty replicas", metadata.CreateTopic{Topic: metadata.Topic{Name: "x", ID: "ab", Partitions: 1, ReplicationFactor: 1,
			Assignments: []metadata.Assignment{{}}}}, apierr.ErrInvalidReplication},
		{"reassign to nobody", metadata.Reassign{Topic: "orders", Partition: 0, Replicas: nil}, apierr.ErrInvalidReplication},
		{"reassign to a stranger", metadata.Reassign{Topic: "orders", Partition: 0, Replicas: []uint32{42}}, apierr.ErrInvalidReplication},
		{"bad config", metadata.AlterTopicConfig{Name: "orders", Set: map[string]string{"retention.ms": "-9"}}, apierr.ErrInvalidConfig},
	}
	for _, f := range forged {
		enc, err := metadata.EncodeChange(f.c)
		if err != nil {
			t.Fatal(err)
		}
		_, err = ic.ApplyMetadata(ctx(t), &v1.ApplyMetadataRequest{Change: enc})
		wantCode(t, f.name, err, f.want)
	}
	_, err := ic.ApplyMetadata(ctx(t), &v1.ApplyMetadataRequest{Change: []byte(`{"kind":"metadata.Reassign","change":{"Topic":"orders","Replicas":[]}}`)})
	wantCode(t, "raw empty reassign", err, apierr.ErrInvalidReplication)

	if ents, err := os.ReadDir(root); err != nil || len(ents) != 1 || ents[0].Name() != "data" {
		t.Fatalf("a forged change reached the filesystem outside the data dir: %v %v", ents, err)
	}
	d, err := c.DescribeTopic(ctx(t), &v1.DescribeTopicRequest{Name: "orders"})
	if err != nil || len(d.Topic.Partitions) != 1 || len(d.Topic.Partitions[0].Replicas) != 1 {
		t.Fatalf("orders after forged changes: %v %v", d, err)
	}
	list, err := c.ListTopics(ctx(t), &v1.ListTopicsRequest{})
	if err != nil || len(list.Topics) != 1 {
		t.Fatalf("topics after forged changes: %v %v", list, err)
	}
	if _, err := c.Produce(ctx(t), &v1.ProduceRequest{Topic: "orders", Partitions: []*v1.ProducePartition{{Batches: encode(t, "still serving")}}}); err != nil {
		t.Fatal(err)
	}
}

// TestCreateTopicRefusesPathNames: the client API refuses every name that
// could become a path outside the data dir, and the reserved "__" names.
func TestCreateTopicRefusesPathNames(t *testing.T) {
	c := dial(t, brokertest.Start(t))
	for _, name := range []string{"../x", "../../etc", "a/../../b", "/abs", `a\b`, "..", ".", "__x", "__consumer_offsets", "x\x00y"} {
		_, err := c.CreateTopic(ctx(t), &v1.CreateTopicRequest{Name: name, Partitions: 1})
		wantCode(t, name, err, apierr.ErrInvalidTopic)
	}
}

// TestInternalTopicsProtected: clients cannot produce to, trim, alter or
// delete __consumer_offsets; they can read it.
func TestInternalTopicsProtected(t *testing.T) {
	b := brokertest.StartBroker(t, func(c *broker.Config) { c.OffsetsPartitions = 1 })
	c := dial(t, b.APIAddr())
	if _, err := c.FindCoordinator(ctx(t), &v1.FindCoordinatorRequest{Group: "g"}); err != nil {
		t.Fatal(err) // creates __consumer_offsets
	}
	const topic = "__consumer_offsets"
	_, err := c.Produce(ctx(t), &v1.ProduceRequest{Topic: topic, Partitions: []*v1.ProducePartition{{Batches: encode(t, "forged commit")}}})
	wantCode(t, "produce", err, apierr.ErrPolicyViolation)
	_, err = c.DeleteRecords(ctx(t), &v1.DeleteRecordsRequest{Topic: topic, Partitions: []*v1.DeleteRecordsPartition{{Partition: 0, BeforeOffset: 0}}})
	wantCode(t, "delete records", err, apierr.ErrPolicyViolation)
	_, err = c.AlterTopicConfig(ctx(t), &v1.AlterTopicConfigRequest{Name: topic, Set: map[string]string{"retention.ms": "1"}})
	wantCode(t, "alter config", err, apierr.ErrPolicyViolation)
	_, err = c.DeleteTopic(ctx(t), &v1.DeleteTopicRequest{Name: topic})
	wantCode(t, "delete", err, apierr.ErrPolicyViolation)
	if _, err := c.DescribeTopic(ctx(t), &v1.DescribeTopicRequest{Name: topic}); err != nil {
		t.Fatalf("describe after refused delete: %v", err)
	}
	f, err := c.Fetch(ctx(t), &v1.FetchRequest{Partitions: []*v1.FetchPartition{{Topic: topic, Partition: 0}}})
	if err != nil || len(f.Partitions) != 1 || f.Partitions[0].Error != nil {
		t.Fatalf("reading an internal topic: %v %v", f, err)
	}
}
