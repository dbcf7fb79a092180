package broker_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/brokertest"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/broker"
	"github.com/stratalog/strata/pkg/record"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, brokertest.LeakOptions()...) }

// internalConn is a connection to b's inter-broker listener for its
// internal service, closed with the test.
func internalConn(tb testing.TB, b *broker.Broker) *grpc.ClientConn {
	tb.Helper()
	cc, err := broker.DialInternal(b.RaftAddr(), broker.Config{ClusterSecret: brokertest.ClusterSecret})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cc.Close() })
	return cc
}

// grpcConn is a connection to a broker's API, closed with the test.
func grpcConn(tb testing.TB, addr string) *grpc.ClientConn {
	tb.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cc.Close() })
	return cc
}

func dial(tb testing.TB, addr string) v1.StrataClient { return v1.NewStrataClient(grpcConn(tb, addr)) }

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func encode(t *testing.T, values ...string) []byte {
	t.Helper()
	recs := make([]record.Record, len(values))
	for i, v := range values {
		recs[i] = record.Record{Value: []byte(v), Timestamp: time.UnixMilli(1_700_000_000_000 + int64(i)*1000)}
	}
	b, err := record.Encode(recs, record.EncodeOptions{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wantCode checks a whole-call error's code.
func wantCode(t *testing.T, what string, err error, want *apierr.Error) {
	t.Helper()
	got := apierr.FromStatus(err)
	if !errors.Is(got, want) {
		t.Fatalf("%s: got %v, want code %v", what, err, want.Code)
	}
}

func TestTopicAdminRejectsBadInput(t *testing.T) {
	c := dial(t, brokertest.Start(t))
	cases := []struct {
		name string
		req  *v1.CreateTopicRequest
		want *apierr.Error
	}{
		{"empty name", &v1.CreateTopicRequest{Name: "", Partitions: 1}, apierr.ErrInvalidTopic},
		{"dot", &v1.CreateTopicRequest{Name: ".", Partitions: 1}, apierr.ErrInvalidTopic},
		{"dotdot", &v1.CreateTopicRequest{Name: "..", Partitions: 1}, apierr.ErrInvalidTopic},
		{"slash", &v1.CreateTopicRequest{Name: "a/b", Partitions: 1}, apierr.ErrInvalidTopic},
		{"long", &v1.CreateTopicRequest{Name: strings.Repeat("a", 250), Partitions: 1}, apierr.ErrInvalidTopic},
		{"zero partitions", &v1.CreateTopicRequest{Name: "a", Partitions: 0}, apierr.ErrInvalidPartitions},
		{"negative partitions", &v1.CreateTopicRequest{Name: "a", Partitions: -3}, apierr.ErrInvalidPartitions},
		{"rf 3 on one broker", &v1.CreateTopicRequest{Name: "a", Partitions: 1, ReplicationFactor: 3}, apierr.ErrInvalidReplication},
		{"unknown config", &v1.CreateTopicRequest{Name: "a", Partitions: 1, Configs: map[string]string{"retention.weeks": "1"}}, apierr.ErrInvalidConfig},
		{"bad config value", &v1.CreateTopicRequest{Name: "a", Partitions: 1, Configs: map[string]string{"retention.ms": "forever"}}, apierr.ErrInvalidConfig},
	}
	for _, tc := range cases {
		_, err := c.CreateTopic(ctx(t), tc.req)
		wantCode(t, tc.name, err, tc.want)
	}
	list, err := c.ListTopics(ctx(t), &v1.ListTopicsRequest{})
	if err != nil || len(list.Topics) != 0 {
		t.Fatalf("rejected creates left topics: %v %v", list, err)
	}
	if _, err := c.CreateTopic(ctx(t), &v1.CreateTopicRequest{Name: "a", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateTopic(ctx(t), &v1.CreateTopicRequest{Name: "a", Partitions: 2})
	wantCode(t, "duplicate", err, apierr.ErrTopicExists)
	_, err = c.DescribeTopic(ctx(t), &v1.DescribeTopicRequest{Name: "nope"})
	wantCode(t, "describe unknown", err, apierr.ErrUnknownTopic)
	_, err = c.DeleteTopic(ctx(t), &v1.DeleteTopicRequest{Name: "nope"})
	wantCode(t, "delete unknown", err, apierr.ErrUnknownTopic)
	_, err = c.AlterTopicConfig(ctx(t), &v1.AlterTopicConfigRequest{Name: "a", Set: map[string]string{"segment.bytes": "1"}})
	wantCode(t, "alter bad value", err, apierr.ErrInvalidConfig)
}

func TestAlterConfigAndImmutable(t *testing.T) {
	c := dial(t, brokertest.Start(t))
	if _, err := c.CreateTopic(ctx(t), &v1.CreateTopicRequest{Name: "events", Partitions: 1, Configs: map[string]string{"immutable": "true"}}); err != nil {
		t.Fatal(err)
	}
	_, err := c.AlterTopicConfig(ctx(t), &v1.AlterTopicConfigRequest{Name: "events", Set: map[string]string{"immutable": "false"}})
	wantCode(t, "weaken immutable", err, apierr.ErrPolicyViolation)
	_, err = c.AlterTopicConfig(ctx(t), &v1.AlterTopicConfigRequest{Name: "events", Delete: []string{"immutable"}})
	wantCode(t, "reset immutable", err, apierr.ErrPolicyViolation)
	_, err = c.AlterTopicConfig(ctx(t), &v1.AlterTopicConfigRequest{Name: "events", Set: map[string]string{"retention.ms": "1000"}})
	wantCode(t, "retention on immutable", err, apierr.ErrInvalidConfig)
	_, err = c.DeleteTopic(ctx(t), &v1.DeleteTopicRequest{Name: "events"})
	wantCode(t, "delete immutable", err, apierr.ErrPolicyViolation)

	resp, err := c.AlterTopicConfig(ctx(t), &v1.AlterTopicConfigRequest{Name: "events", Set: map[string]string{"max.message.bytes": "2048"}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*v1.TopicConfigEntry{}
	for _, e := range resp.Topic.Configs {
		got[e.Key] = e
	}
	if got["max.message.bytes"].Value != "2048" || got["max.message.bytes"].IsDefault || !got["segment.bytes"].IsDefault || got["retention.ms"].Value != "604800000" {
		t.Fatalf("configs after alter: %v", resp.Topic.Configs)
	}
	// The new limit applies at once.
	pr, err := c.Produce(ctx(t), &v1.ProduceRequest{Topic: "events", Partitions: []*v1.ProducePartition{{Partition: 0, Batches: encode(t, strings.Repeat("x", 4096))}}})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(apierr.FromProto(pr.Partitions[0].Error), apierr.ErrRecordTooLarge) {
		t.Fatalf("over the new max.message.bytes: %v", pr.Partitions[0].Error)
	}
}

func TestProduceRejectsBadBatches(t *testing.T) {
	c := dial(t, brokertest.Start(t))
	if _, err := c.CreateTopic(ctx(t), &v1.CreateTopicRequest{Name: "t", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	good := encode(t, "a", "b")
	flipped := encode(t, "a", "b")
	flipped[len(flipped)-2] ^= 1
	big := encode(t, strings.Repeat("x", 2<<20))
	badMagic := encode(t, "a")
	badMagic[16] = 1
	cases := []struct {
		name    string
		part    int32
		batches []byte
		want    *apierr.Error
	}{
		{"crc", 0, flipped, apierr.ErrCorruptBatch},
		{"truncated", 0, good[:len(good)-1], apierr.ErrCorruptBatch},
		{"garbage", 0, []byte("hello"), apierr.ErrCorruptBatch},
		{"magic", 0, badMagic, apierr.ErrCorruptBatch},
		{"good then bad", 0, append(append([]byte{}, good...), flipped...), apierr.ErrCorruptBatch},
		{"too large", 0, big, apierr.ErrRecordTooLarge},
		{"unknown partition", 7, good, apierr.ErrUnknownPartition},
		{"negative partition", -1, good, apierr.ErrUnknownPartition},
		{"empty", 0, nil, apierr.ErrInvalidRequest},
	}
	for _, tc := range cases {
		resp, err := c.Produce(ctx(t), &v1.ProduceRequest{Topic: "t", Partitions: []*v1.ProducePartition{{Partition: tc.part, Batches: tc.batches}}})
		if err != nil {
			t.Fatalf("%s: call failed: %v", tc.name, err)
		}
		if got := apierr.FromProto(resp.Partitions[0].Error); !errors.Is(got, tc.want) {
			t.Fatalf("%s: got %v, want %v", tc.name, got, tc.want.Code)
		}
	}
	_, err := c.Produce(ctx(t), &v1.ProduceRequest{Topic: "missing", Partitions: []*v1.ProducePartition{{Partition: 0, Batches: good}}})
	wantCode(t, "unknown topic", err, apierr.ErrUnknownTopic)

	d, err := c.DescribeTopic(ctx(t), &v1.DescribeTopicRequest{Name: "t"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range d.Topic.Partitions {
		if p.LogEndOffset != 0 {
			t.Fatalf("rejected produce stored records: %v", p)
		}
	}
}

func TestProduceFetchListOffsets(t *testing.T) {
	c := dial(t, brokertest.Start(t))
	if _, err := c.CreateTopic(ctx(t), &v1.CreateTopicRequest{Name: "t", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		resp, err := c.Produce(ctx(t), &v1.ProduceRequest{Topic: "t", Partitions: []*v1.ProducePartition{{Partition: 0, Batches: encode(t, "a", "b")}}})
		if err != nil || resp.Partitions[0].Error != nil {
			t.Fatal(err, resp)
		}
		if r := resp.Partitions[0]; r.BaseOffset != int64(2*i) || r.LastOffset != int64(2*i+1) {
			t.Fatalf("produce %d: %v", i, r)
		}
	}
	f, err := c.Fetch(ctx(t), &v1.FetchRequest{Partitions: []*v1.FetchPartition{{Topic: "t", Partition: 0, Offset: 3}}})
	if err != nil {
		t.Fatal(err)
	}
	fr := f.Partitions[0]
	if fr.Error != nil || fr.HighWatermark != 6 || fr.LogStartOffset != 0 {
		t.Fatalf("fetch: %v", fr)
	}
	var offs []int64
	for rest := fr.Batches; len(rest) > 0; {
		b, _, r, err := record.Next(rest)
		if err != nil {
			t.Fatal(err)
		}
		rest = r
		recs, err := record.Decode(b, record.DecodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range recs {
			offs = append(offs, rec.Offset)
		}
	}
	if offs[0] > 3 || offs[len(offs)-1] != 5 {
		t.Fatalf("fetched offsets %v", offs)
	}

	f, err = c.Fetch(ctx(t), &v1.FetchRequest{Partitions: []*v1.FetchPartition{{Topic: "t", Partition: 0, Offset: 99}, {Topic: "nope", Partition: 0}}})
	if err != nil {
		t.Fatal(err)
	}
	oor := apierr.FromProto(f.Partitions[0].Error)
	var e *apierr.Error
	if !errors.As(oor, &e) || !errors.Is(e, apierr.ErrOffsetOutOfRange) || e.LogStartOffset != 0 || e.HighWatermark != 6 {
		t.Fatalf("out of range: %v", oor)
	}
	if !errors.Is(apierr.FromProto(f.Partitions[1].Error), apierr.ErrUnknownTopic) {
		t.Fatalf("unknown topic in fetch: %v", f.Partitions[1].Error)
	}

	lo, err := c.ListOffsets(ctx(t), &v1.ListOffsetsRequest{Partitions: []*v1.ListOffsetsPartition{
		{Topic: "t", Spec: v1.OffsetSpec_OFFSET_SPEC_EARLIEST},
		{Topic: "t", Spec: v1.OffsetSpec_OFFSET_SPEC_LATEST},
		{Topic: "t", Spec: v1.OffsetSpec_OFFSET_SPEC_TIMESTAMP, TimestampMs: 1_700_000_000_500},
		{Topic: "t", Spec: v1.OffsetSpec_OFFSET_SPEC_TIMESTAMP, TimestampMs: 1_800_000_000_000},
		{Topic: "t", Partition: 5},
	}})
	if err != nil {
		t.Fatal(err)
	}
	p := lo.Partitions
	if p[0].Offset != 0 || p[1].Offset != 6 || !p[2].Found || p[2].Offset != 0 || p[3].Found || p[3].Offset != 6 {
		t.Fatalf("list offsets: %v", p)
	}
	if !errors.Is(apierr.FromProto(p[4].Error), apierr.ErrUnknownPartition) {
		t.Fatalf("list offsets unknown partition: %v", p[4].Error)
	}
}

func TestFetchLongPollWakesOnProduce(t *testing.T) {
	c := dial(t, brokertest.Start(t))
	if _, err := c.CreateTopic(ctx(t), &v1.CreateTopicRequest{Name: "t", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	type result struct {
		resp *v1.FetchResponse
		err  error
	}
	done := make(chan result, 1)
	go func() {
		r, err := c.Fetch(ctx(t), &v1.FetchRequest{MaxWaitMs: 20000, MinBytes: 1, Partitions: []*v1.FetchPartition{{Topic: "t", Offset: 0}}})
		done <- result{r, err}
	}()
	start := time.Now()
	// The fetch is parked; a produce must end it long before 20 s.
	if _, err := c.Produce(ctx(t), &v1.ProduceRequest{Topic: "t", Partitions: []*v1.ProducePartition{{Batches: encode(t, "wake")}}}); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || len(r.resp.Partitions[0].Batches) == 0 {
		t.Fatalf("long poll: %v %v", r.resp, r.err)
	}
	if time.Since(start) > 15*time.Second {
		t.Fatalf("long poll was not woken by the produce")
	}
	// With nothing to wake it, the wait ends at max_wait with no data.
	r2, err := c.Fetch(ctx(t), &v1.FetchRequest{MaxWaitMs: 50, MinBytes: 1, Partitions: []*v1.FetchPartition{{Topic: "t", Offset: 1}}})
	if err != nil || len(r2.Partitions[0].Batches) != 0 {
		t.Fatalf("empty long poll: %v %v", r2, err)
	}
}

func TestAutoCreateAndMetadata(t *testing.T) {
	c := dial(t, brokertest.Start(t, func(cfg *broker.Config) { cfg.AutoCreateTopics = true; cfg.DefaultPartitions = 3 }))
	resp, err := c.Produce(ctx(t), &v1.ProduceRequest{Topic: "auto", Partitions: []*v1.ProducePartition{{Partition: 2, Batches: encode(t, "x")}}})
	if err != nil || resp.Partitions[0].Error != nil {
		t.Fatal(err, resp)
	}
	md, err := c.Metadata(ctx(t), &v1.MetadataRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Brokers) != 1 || md.ClusterId == "" || len(md.Topics) != 1 || len(md.Topics[0].Partitions) != 3 || md.Topics[0].Partitions[2].Leader != md.Brokers[0].NodeId {
		t.Fatalf("metadata: %v", md)
	}
	md, err = c.Metadata(ctx(t), &v1.MetadataRequest{Topics: []string{"ghost"}})
	if err != nil || !errors.Is(apierr.FromProto(md.Topics[0].Error), apierr.ErrUnknownTopic) {
		t.Fatalf("metadata for unknown topic: %v %v", md, err)
	}
}

// TestMetadataMaxMessageBytes: each topic's effective max.message.bytes
// (its own, else the broker's default) travels in Metadata, and an altered
// one shows in the next Metadata, so producers size batches under it.
func TestMetadataMaxMessageBytes(t *testing.T) {
	c := dial(t, brokertest.Start(t))
	if _, err := c.CreateTopic(ctx(t), &v1.CreateTopicRequest{Name: "plain", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateTopic(ctx(t), &v1.CreateTopicRequest{Name: "small", Partitions: 1, Configs: map[string]string{"max.message.bytes": "65536"}}); err != nil {
		t.Fatal(err)
	}
	limits := func() map[string]int32 {
		md, err := c.Metadata(ctx(t), &v1.MetadataRequest{})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int32{}
		for _, tm := range md.Topics {
			out[tm.Name] = tm.MaxMessageBytes
		}
		return out
	}
	if got := limits(); got["plain"] != 1<<20 || got["small"] != 65536 {
		t.Fatalf("max_message_bytes: %v, want plain 1048576 (the default) and small 65536", got)
	}
	if _, err := c.AlterTopicConfig(ctx(t), &v1.AlterTopicConfigRequest{Name: "small", Set: map[string]string{"max.message.bytes": "4096"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the altered max.message.bytes shows in Metadata", func() bool { return limits()["small"] == 4096 })
}

func TestRestartKeepsTopicsAndRecords(t *testing.T) {
	cfg := brokertest.Config(t, 1)
	b := brokertest.Run(t, cfg)
	brokertest.WaitReady(t, b)
	c := dial(t, b.APIAddr())
	if _, err := c.CreateTopic(ctx(t), &v1.CreateTopicRequest{Name: "t", Partitions: 2, Configs: map[string]string{"retention.ms": "-1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Produce(ctx(t), &v1.ProduceRequest{Topic: "t", Partitions: []*v1.ProducePartition{{Partition: 1, Batches: encode(t, "a", "b", "c")}}}); err != nil {
		t.Fatal(err)
	}
	// Restart on the same data dir and the same Raft address (the groups'
	// configurations name it).
	cfg.RaftAddr = b.RaftAddr()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = brokertest.Run(t, cfg)
	brokertest.WaitReady(t, b)
	c = dial(t, b.APIAddr())
	var d *v1.DescribeTopicResponse
	eventually(t, "partition 1 serves its 3 records after the restart", func() bool {
		var err error
		d, err = c.DescribeTopic(ctx(t), &v1.DescribeTopicRequest{Name: "t"})
		return err == nil && d.Topic.Partitions[1].HighWatermark == 3 && d.Topic.Partitions[1].Leader == 1
	})
	if len(d.Topic.Partitions) != 2 {
		t.Fatalf("after restart: %v", d.Topic)
	}
	// A deleted and recreated topic starts empty.
	if _, err := c.DeleteTopic(ctx(t), &v1.DeleteTopicRequest{Name: "t"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateTopic(ctx(t), &v1.CreateTopicRequest{Name: "t", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	d, err := c.DescribeTopic(ctx(t), &v1.DescribeTopicRequest{Name: "t"})
	if err != nil || d.Topic.Partitions[1].HighWatermark != 0 {
		t.Fatalf("recreated topic: %v %v", d, err)
	}
}

// eventually polls cond (every 20 ms) until it holds, failing after 20 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20s", what)
		}
		time.Sleep(20 * time.Millisecond) // polling a remote condition; there is nothing to wait on
	}
}

func TestHTTPEndpoints(t *testing.T) {
	b := brokertest.StartBroker(t)
	c := dial(t, b.APIAddr())
	if _, err := c.CreateTopic(ctx(t), &v1.CreateTopicRequest{Name: "m", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/healthz": "ok",
		"/readyz":  "ready",
		"/metrics": `strata_partition_high_watermark{partition="0",topic="m"}`,
	} {
		resp, err := http.Get("http://" + b.HTTPAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Fatalf("%s: %d %q", path, resp.StatusCode, body)
		}
	}
}
