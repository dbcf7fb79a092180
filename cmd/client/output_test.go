package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/client"
	"github.com/stratalog/strata/pkg/record"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func compact(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestTopicJSONShape(t *testing.T) {
	d := client.TopicDetail{
		Name: "ev", ReplicationFactor: 1,
		Partitions: []client.PartitionDetail{{Partition: 0, Leader: 1, Replicas: []uint32{1}, InSyncReplicas: []uint32{1},
			HighWatermark: 5, LogStartOffset: 2, LogEndOffset: 6, SizeBytes: 99,
			Lagging: []client.ReplicaLag{{NodeID: 2, Answered: true, OffsetsBehind: 5, BytesBehind: 5000, Copying: true, CopiedBytes: 100, CopyTotalBytes: 6000}}}},
		Configs: []client.ConfigEntry{{Key: "retention.ms", Value: "1000"}, {Key: "max.message.bytes", Value: "1048576", Default: true}},
	}
	want := `{"name":"ev","replication_factor":1,"partitions":[{"partition":0,"leader":1,"replicas":[1],"in_sync_replicas":[1],"high_watermark":5,"log_start_offset":2,"log_end_offset":6,` +
		`"lagging":[{"node_id":2,"answered":true,"offsets_behind":5,"bytes_behind":5000,"copying":true,"copied_bytes":100,"copy_total_bytes":6000}]}],` +
		`"configs":{"max.message.bytes":"1048576","retention.ms":"1000"},"config_sources":{"max.message.bytes":"default","retention.ms":"topic"}}`
	if got := compact(t, topicJSON(d)); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	// A damaged replica says until when it abstains; a healthy one omits it.
	d.Partitions[0].Lagging[0].AbstainUntil = 23
	if got := compact(t, topicJSON(d)); !strings.Contains(got, `"copy_total_bytes":6000,"abstain_until":23}`) {
		t.Errorf("damaged replica: %s", got)
	}
	// Empty lists are [] and {}, never null.
	if got := compact(t, topicJSON(client.TopicDetail{Name: "x", Partitions: []client.PartitionDetail{{}}})); got !=
		`{"name":"x","replication_factor":0,"partitions":[{"partition":0,"leader":0,"replicas":[],"in_sync_replicas":[],"high_watermark":0,"log_start_offset":0,"log_end_offset":0,"lagging":[]}],"configs":{},"config_sources":{}}` {
		t.Errorf("empty: %s", got)
	}
}

func TestRecordJSONShape(t *testing.T) {
	r := &client.Record{Topic: "ev", Partition: 1, Offset: 7, Key: []byte("k"), Value: []byte("v"),
		Headers: []record.Header{{Key: "h", Value: []byte("x")}}, Timestamp: time.UnixMilli(1700000000000)}
	want := `{"topic":"ev","partition":1,"offset":7,"timestamp":1700000000000,"key":"k","value":"v","headers":[{"key":"h","value":"x"}]}`
	if got := compact(t, toRecordJSON(r, "text")); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	tomb := &client.Record{Topic: "ev", Timestamp: time.UnixMilli(0)}
	if got := compact(t, toRecordJSON(tomb, "text")); got != `{"topic":"ev","partition":0,"offset":0,"timestamp":0,"key":null,"value":null,"headers":[]}` {
		t.Errorf("null key and tombstone: %s", got)
	}
	for _, enc := range []string{"base64", "hex"} {
		if got := compact(t, toRecordJSON(tomb, enc)); !strings.Contains(got, `"key":null,"value":null`) {
			t.Errorf("--encoding %s, tombstone: %s", enc, got)
		}
	}
}

// Bytes that are not UTF-8 are never replaced: with --encoding text they
// turn to base64, marked; base64 and hex encode everything, marked.
func TestRecordJSONEncodings(t *testing.T) {
	r := &client.Record{Topic: "ev", Key: []byte("k"), Value: []byte{0xff, 0x00, 'a'},
		Headers: []record.Header{{Key: "h", Value: []byte{0xc3}}, {Key: "ok", Value: []byte("é")}}, Timestamp: time.UnixMilli(0)}
	for _, c := range []struct{ enc, want string }{
		{"text", `"key":"k","value":"/wBh","value_encoding":"base64","headers":[{"key":"h","value":"ww==","value_encoding":"base64"},{"key":"ok","value":"é"}]`},
		{"base64", `"key":"aw==","key_encoding":"base64","value":"/wBh","value_encoding":"base64","headers":[{"key":"h","value":"ww==","value_encoding":"base64"},{"key":"ok","value":"w6k=","value_encoding":"base64"}]`},
		{"hex", `"key":"6b","key_encoding":"hex","value":"ff0061","value_encoding":"hex","headers":[{"key":"h","value":"c3","value_encoding":"hex"},{"key":"ok","value":"c3a9","value_encoding":"hex"}]`},
	} {
		got := compact(t, toRecordJSON(r, c.enc))
		if !strings.Contains(got, c.want) || strings.Contains(got, "\\ufffd") {
			t.Errorf("--encoding %s:\n got %s\nwant …%s}", c.enc, got, c.want)
		}
	}
}

func TestBenchJSONShape(t *testing.T) {
	got := compact(t, benchJSON{Records: 10, RecordsPerSec: 5, MBPerSec: 0.5, P50Ms: 1, P90Ms: 1.5, P99Ms: 2, P999Ms: 3, MaxMs: 4, ElapsedSec: 2})
	want := `{"records":10,"records_per_sec":5,"mb_per_sec":0.5,"p50_ms":1,"p90_ms":1.5,"p99_ms":2,"p999_ms":3,"max_ms":4,"elapsed_sec":2}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestTableHeadersAreUpperCaseAndAligned(t *testing.T) {
	var b bytes.Buffer
	tb := newTable(&b, "NAME", "PARTITIONS")
	tb.row("a-long-name", 3)
	tb.row("b", 12)
	if err := tb.flush(); err != nil {
		t.Fatal(err)
	}
	want := "NAME         PARTITIONS\na-long-name  3\nb            12\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestAdvice(t *testing.T) {
	e := &env{brokers: []string{"127.0.0.1:9092"}, timeout: 10 * time.Second}
	for _, c := range []struct {
		err  error
		want string
	}{
		{onTopic("x", apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN_TOPIC, "unknown topic")),
			`topic "x" does not exist (create it with: strata topic create x)`},
		{onTopic("x", fmt.Errorf("produce: %w", apierr.ErrTopicExists)),
			`topic "x" already exists (see it with: strata topic describe x)`},
		{&apierr.Error{Code: v1.ErrorCode_ERROR_CODE_UNAVAILABLE, Message: "broker unreachable: connection refused"},
			"cannot reach a broker at 127.0.0.1:9092 (is it running? set --brokers or STRATA_BROKERS)"},
		{fmt.Errorf("x: %w", &apierr.Error{Code: v1.ErrorCode_ERROR_CODE_OFFSET_OUT_OF_RANGE, Message: "offset 9 out of range", LogStartOffset: 2, HighWatermark: 5}),
			"x: offset 9 out of range (valid offsets are 2 to 5)"},
		{fmt.Errorf("list topics: %w", context.DeadlineExceeded), "timed out after 10s (raise --timeout, or check the brokers at 127.0.0.1:9092)"},
		{usageErrorf("--output %q: want table or json", "xml"), `--output "xml": want table or json (see --help)`},
		{errors.New("two\nlines"), "two; lines"},
		{fmt.Errorf("produced 3 records to t, then stopped: %w", context.Canceled), "produced 3 records to t, then stopped: interrupted"},
		{onTopic("x", status.Error(codes.Unimplemented, "method DeleteRecords not implemented")),
			"the broker does not support this command (method DeleteRecords not implemented): it runs an older Strata than this CLI; upgrade the brokers"},
	} {
		if got := advise(c.err, e); got != c.want {
			t.Errorf("advise(%v):\n got %s\nwant %s", c.err, got, c.want)
		}
		if strings.Contains(advise(c.err, e), "\n") {
			t.Errorf("advice for %v is more than one line", c.err)
		}
	}
}

// A move's progress, not on a terminal: one line per step, and while the
// new replica copies the leader's log, one per tenth of the copy.
func TestMoveProgressShowsTheLogCopy(t *testing.T) {
	var buf bytes.Buffer
	p := &progress{w: &buf}
	step := func(s string, lag, copied, total int64) {
		p.show(client.MoveProgress{Topic: "ev", Partition: 0, Step: s, Lag: lag, CopiedBytes: copied, CopyTotalBytes: total})
	}
	step("adding 4 as non-voter", 0, 0, 0)
	step("catching up 4", -1, 0, 0)
	step("catching up 4", 900, 0, 100<<20)
	step("catching up 4", 900, 5<<20, 100<<20)  // same tenth: no line
	step("catching up 4", 900, 52<<20, 100<<20) // 5th tenth
	step("catching up 4", 0, 0, 0)
	step("promoting 4", 0, 0, 0)
	want := `ev/0: adding 4 as non-voter
ev/0: catching up 4
ev/0: catching up 4 (copying the leader's log: 0 B of 100.0 MiB, 0%)
ev/0: catching up 4 (copying the leader's log: 52.0 MiB of 100.0 MiB, 52%)
ev/0: catching up 4
ev/0: promoting 4
`
	if buf.String() != want {
		t.Errorf("progress lines:\n%s\nwant:\n%s", buf.String(), want)
	}
}

func TestDescribeListsReplicasNotInSync(t *testing.T) {
	var buf bytes.Buffer
	e := &env{stdout: &buf}
	err := e.printLagging([]client.PartitionDetail{
		{Partition: 0},
		{Partition: 1, Lagging: []client.ReplicaLag{
			{NodeID: 3, Answered: true, OffsetsBehind: 1200, BytesBehind: 3 << 20},
			{NodeID: 4, Answered: true, OffsetsBehind: 90000, BytesBehind: 70 << 20, Copying: true, CopiedBytes: 30 << 20, CopyTotalBytes: 100 << 20},
			{NodeID: 5},
			{NodeID: 6, Answered: true, OffsetsBehind: 10820, BytesBehind: 11 << 20, AbstainUntil: 23},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"NOT IN SYNC:", "1          3        1200            ~3.0 MiB", "copied 30.0 MiB of 100.0 MiB (30%)", "broker did not answer",
		"damaged log: refetching, no vote until raft index 23"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("describe's lagging replicas lack %q:\n%s", want, buf.String())
		}
	}
}
