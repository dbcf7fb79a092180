package broker_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/brokertest"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/broker"
	"github.com/stratalog/strata/pkg/metadata"
)

// Hardening against bad input (issue 12): forged metadata changes,
// path-traversal names and internal topics, over gRPC against a real
// broker.

// TestForgedMetadataChangesRefused sends ApplyMetadata, as a peer that
// passed the inter-broker handshake could, with changes no broker would propose: the
// state machine refuses each, nothing is created outside the data dir and
// the broker keeps serving.
func TestForgedMetadataChangesRefused(t *testing.T) {
	root := t.TempDir()
	b := brokertest.StartBroker(t, func(c *broker.Config) { c.DataDir = filepath.Join(root, "data") })
	c, ic := v1.NewStrataClient(grpcConn(t, b.APIAddr())), v1.NewStrataInternalClient(internalConn(t, b))
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

// TestPprofOnlyWhenEnabled: /debug/pprof is 404 unless --enable-pprof.
func TestPprofOnlyWhenEnabled(t *testing.T) {
	for _, enabled := range []bool{false, true} {
		b := brokertest.StartBroker(t, func(c *broker.Config) { c.EnablePprof = enabled })
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/symbol"} {
			resp, err := http.Get("http://" + b.HTTPAddr() + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			want := http.StatusNotFound
			if enabled {
				want = http.StatusOK
			}
			if resp.StatusCode != want {
				t.Fatalf("enable-pprof=%v: %s answered %d, want %d", enabled, path, resp.StatusCode, want)
			}
		}
	}
}

// TestHandlerPanicBecomesInternal: a handler that panics (unary or
// stream) answers INTERNAL, is counted, and the broker keeps serving.
func TestHandlerPanicBecomesInternal(t *testing.T) {
	b := brokertest.StartBroker(t)
	broker.SetHandlerHook(b, func(method string) {
		if method == v1.Strata_DescribeTopic_FullMethodName || method == v1.Strata_MovePartition_FullMethodName {
			panic("injected by the test")
		}
	})
	c := dial(t, b.APIAddr())
	_, err := c.DescribeTopic(ctx(t), &v1.DescribeTopicRequest{Name: "x"})
	if status.Code(err) != codes.Internal {
		t.Fatalf("unary panic: got %v, want INTERNAL", err)
	}
	st, err := c.MovePartition(ctx(t), &v1.MovePartitionRequest{Topic: "x"})
	if err == nil {
		_, err = st.Recv()
	}
	if status.Code(err) != codes.Internal {
		t.Fatalf("stream panic: got %v, want INTERNAL", err)
	}
	if _, err := c.CreateTopic(ctx(t), &v1.CreateTopicRequest{Name: "after", Partitions: 1}); err != nil {
		t.Fatalf("broker after the panics: %v", err)
	}
	body := httpGet(t, "http://"+b.HTTPAddr()+"/metrics")
	for _, want := range []string{`strata_handler_panics_total{method="DescribeTopic"} 1`, `strata_handler_panics_total{method="MovePartition"} 1`} {
		if !strings.Contains(body, want) {
			t.Fatalf("metrics lack %s", want)
		}
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestOversizedFieldsRefused: every bounded field refuses one byte or one
// entry over its limit with INVALID_REQUEST naming the field and limit.
func TestOversizedFieldsRefused(t *testing.T) {
	b := brokertest.StartBroker(t)
	c := dial(t, b.APIAddr())
	long := func(n int) string { return strings.Repeat("m", n) }
	many := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = "t"
		}
		return out
	}
	hb := func(f func(*v1.GroupHeartbeatRequest)) *v1.GroupHeartbeatRequest {
		r := &v1.GroupHeartbeatRequest{Group: "g", Topics: []string{"t"}}
		f(r)
		return r
	}
	configs := map[string]string{}
	for i := range 65 {
		configs[fmt.Sprint("k", i)] = "v"
	}
	cases := []struct {
		name, field string
		call        func() error
	}{
		{"member id", "GroupHeartbeatRequest.member_id has 256 bytes; the limit is 255", func() error {
			_, err := c.GroupHeartbeat(ctx(t), hb(func(r *v1.GroupHeartbeatRequest) { r.MemberId = long(256) }))
			return err
		}},
		{"instance id", "GroupHeartbeatRequest.instance_id has 100000 bytes", func() error {
			_, err := c.GroupHeartbeat(ctx(t), hb(func(r *v1.GroupHeartbeatRequest) { r.InstanceId = long(100000) }))
			return err
		}},
		{"client id", "GroupHeartbeatRequest.client_id", func() error {
			_, err := c.GroupHeartbeat(ctx(t), hb(func(r *v1.GroupHeartbeatRequest) { r.ClientId = long(256) }))
			return err
		}},
		{"regex", "GroupHeartbeatRequest.topic_regex has 1025 bytes; the limit is 1024", func() error {
			_, err := c.GroupHeartbeat(ctx(t), hb(func(r *v1.GroupHeartbeatRequest) { r.Topics, r.TopicRegex = nil, long(1025) }))
			return err
		}},
		{"subscription", "GroupHeartbeatRequest.topics has 10001 entries; the limit is 10000", func() error {
			_, err := c.GroupHeartbeat(ctx(t), hb(func(r *v1.GroupHeartbeatRequest) { r.Topics = many(10001) }))
			return err
		}},
		{"group", "FindCoordinatorRequest.group has 256 bytes", func() error {
			_, err := c.FindCoordinator(ctx(t), &v1.FindCoordinatorRequest{Group: long(256)})
			return err
		}},
		{"commit metadata", "CommitOffsetsRequest.offsets[0].metadata has 4097 bytes; the limit is 4096", func() error {
			_, err := c.CommitOffsets(ctx(t), &v1.CommitOffsetsRequest{Group: "g", MemberEpoch: -1,
				Offsets: []*v1.OffsetCommit{{Topic: "t", Metadata: long(4097)}}})
			return err
		}},
		{"metadata topics", "MetadataRequest.topics has 10001 entries", func() error {
			_, err := c.Metadata(ctx(t), &v1.MetadataRequest{Topics: many(10001)})
			return err
		}},
		{"topic name", "ProduceRequest.topic has 5000 bytes; the limit is 1024", func() error {
			_, err := c.Produce(ctx(t), &v1.ProduceRequest{Topic: long(5000), Partitions: []*v1.ProducePartition{{}}})
			return err
		}},
		{"configs", "CreateTopicRequest.configs has 65 entries; the limit is 64", func() error {
			_, err := c.CreateTopic(ctx(t), &v1.CreateTopicRequest{Name: "x", Partitions: 1, Configs: configs})
			return err
		}},
		{"config value", "AlterTopicConfigRequest.set[retention.ms] has 1025 bytes", func() error {
			_, err := c.AlterTopicConfig(ctx(t), &v1.AlterTopicConfigRequest{Name: "x", Set: map[string]string{"retention.ms": long(1025)}})
			return err
		}},
		{"stream replicas", "MovePartitionRequest.replicas has 65 entries; the limit is 64", func() error {
			st, err := c.MovePartition(ctx(t), &v1.MovePartitionRequest{Topic: "x", Replicas: make([]uint32, 65)})
			if err == nil {
				_, err = st.Recv()
			}
			return err
		}},
	}
	for _, tc := range cases {
		err := tc.call()
		wantCode(t, tc.name, err, apierr.ErrInvalidRequest)
		if !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: error %q does not say %q", tc.name, err, tc.field)
		}
	}
	// At the limit, the same fields pass the bounds and reach the handler
	// (which may still answer that the group's coordinator is not ready).
	_, err := c.GroupHeartbeat(ctx(t), hb(func(r *v1.GroupHeartbeatRequest) { r.InstanceId, r.ClientId = long(255), long(255) }))
	if errors.Is(apierr.FromStatus(err), apierr.ErrInvalidRequest) {
		t.Fatalf("heartbeat at the limits: %v", err)
	}
}

// TestAdminCommitRefusesUnknownPartitions: an admin commit (a seek) for a
// topic or partition that does not exist is refused per partition and not
// stored; the valid ones in the same request are.
func TestAdminCommitRefusesUnknownPartitions(t *testing.T) {
	b := brokertest.StartBroker(t, func(c *broker.Config) { c.OffsetsPartitions = 1 })
	c := dial(t, b.APIAddr())
	if _, err := c.CreateTopic(ctx(t), &v1.CreateTopicRequest{Name: "t", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	req := &v1.CommitOffsetsRequest{Group: "g", MemberEpoch: -1, Offsets: []*v1.OffsetCommit{
		{Topic: "nope", Partition: 0, Offset: 1},
		{Topic: "t", Partition: 1, Offset: 7},
		{Topic: "t", Partition: 2, Offset: 1},
		{Topic: "t", Partition: -1, Offset: 1},
		{Topic: "t", Partition: 0, Offset: 3},
	}}
	var resp *v1.CommitOffsetsResponse
	eventually(t, "the group's coordinator answers", func() bool {
		var err error
		resp, err = c.CommitOffsets(ctx(t), req)
		return err == nil
	})
	want := []*apierr.Error{apierr.ErrUnknownTopic, nil, apierr.ErrUnknownPartition, apierr.ErrUnknownPartition, nil}
	if len(resp.Results) != len(want) {
		t.Fatalf("results %v", resp.Results)
	}
	for i, r := range resp.Results {
		if r.Topic != req.Offsets[i].Topic || r.Partition != req.Offsets[i].Partition {
			t.Fatalf("result %d is for %s/%d, asked %s/%d", i, r.Topic, r.Partition, req.Offsets[i].Topic, req.Offsets[i].Partition)
		}
		switch {
		case want[i] == nil && r.Error != nil:
			t.Fatalf("result %d: %v", i, r.Error)
		case want[i] != nil && !errors.Is(apierr.FromProto(r.Error), want[i]):
			t.Fatalf("result %d: got %v, want %v", i, r.Error, want[i].Code)
		}
	}
	got, err := c.FetchOffsets(ctx(t), &v1.FetchOffsetsRequest{Group: "g"})
	if err != nil {
		t.Fatal(err)
	}
	committed := map[string]int64{}
	for _, o := range got.Offsets {
		committed[fmt.Sprintf("%s/%d", o.Topic, o.Partition)] = o.Offset
	}
	if len(committed) != 2 || committed["t/0"] != 3 || committed["t/1"] != 7 {
		t.Fatalf("committed %v, want t/0=3 t/1=7 only", committed)
	}
}
