package broker_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/brokertest"
	"github.com/stratalog/strata/pkg/broker"
	"github.com/stratalog/strata/pkg/client"
	"github.com/stratalog/strata/pkg/record"
	"github.com/stratalog/strata/pkg/segment"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// kib1Batch is one producer batch at real size: 1,000 records of 1 KiB.
func kib1Batch(t *testing.T, tag string) []byte {
	t.Helper()
	recs := make([]record.Record, 1000)
	for i := range recs {
		v := []byte(fmt.Sprintf("%s-%d-", tag, i))
		recs[i] = record.Record{Value: append(v, bytes.Repeat([]byte{'x'}, 1024-len(v))...), Timestamp: time.UnixMilli(1_700_000_000_000)}
	}
	b, err := record.Encode(recs, record.EncodeOptions{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func metricsText(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestDamagedSoleReplicaIsReportedNotServed reproduces the report in issue
// 10: a single broker, 20,000 acknowledged records of 1 KiB in 1 MiB
// batches, one byte flipped in the middle of the 20 MB active segment,
// restart. It used to cut the log at the flip and serve the rest, 10,820
// records gone. Now the replica is not opened (it is the only copy), the
// damage shows in strata_replica_damaged, and no byte is gone: segment plus
// quarantine are the old file. An operator who accepts the loss deletes
// damaged-index, and the partition serves what precedes the damage.
func TestDamagedSoleReplicaIsReportedNotServed(t *testing.T) {
	cfg := brokertest.Config(t, 1)
	b := brokertest.Run(t, cfg)
	brokertest.WaitReady(t, b)
	c := dial(t, b.APIAddr())
	if _, err := c.CreateTopic(ctx(t), &v1.CreateTopicRequest{Name: "d", Partitions: 1, Configs: map[string]string{"retention.ms": "-1"}}); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		r, err := c.Produce(ctx(t), &v1.ProduceRequest{Topic: "d", Partitions: []*v1.ProducePartition{{Partition: 0, Batches: kib1Batch(t, fmt.Sprint(i))}}})
		if err != nil || r.Partitions[0].Error != nil {
			t.Fatalf("produce: %v %v", err, r)
		}
	}
	cfg.RaftAddr = b.RaftAddr()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(cfg.DataDir, "topics", "d-*", "0", "*.log"))
	if len(segs) == 0 {
		t.Fatal("no segment")
	}
	sort.Strings(segs)
	seg := segs[len(segs)-1]
	orig, err := os.ReadFile(seg)
	if err != nil || len(orig) < 20_000_000 {
		t.Fatalf("active segment: %d bytes, %v", len(orig), err)
	}
	orig[len(orig)/2] ^= 0x10
	if err := os.WriteFile(seg, orig, 0o644); err != nil {
		t.Fatal(err)
	}

	b = brokertest.Run(t, cfg)
	brokertest.WaitReady(t, b)
	eventually(t, "the damage reported in strata_replica_damaged", func() bool {
		return strings.Contains(metricsText(t, b.HTTPAddr()), `strata_replica_damaged{partition="0",state="waiting_for_operator",topic="d"} 1`)
	})
	c = dial(t, b.APIAddr())
	fetch := func() (*v1.FetchPartitionResult, error) {
		r, err := c.Fetch(ctx(t), &v1.FetchRequest{Partitions: []*v1.FetchPartition{{Topic: "d", Partition: 0, Offset: 0, MaxBytes: 1 << 20}}})
		if err != nil {
			return nil, err
		}
		return r.Partitions[0], nil
	}
	if r, err := fetch(); err == nil && r.Error == nil {
		t.Fatalf("a damaged sole replica served a fetch: %d bytes", len(r.Batches))
	}
	cut, _ := os.ReadFile(seg)
	q, _ := filepath.Glob(seg + ".damaged-*")
	if len(q) != 1 {
		t.Fatalf("quarantine: %v", q)
	}
	kept, _ := os.ReadFile(q[0])
	if !bytes.Equal(append(cut, kept...), orig) {
		t.Fatalf("segment (%d) + quarantine (%d) bytes differ from the old segment (%d)", len(cut), len(kept), len(orig))
	}

	// The operator accepts the loss (docs/operations.md, "Damaged logs").
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(filepath.Dir(seg), "damaged-index")); err != nil {
		t.Fatal(err)
	}
	b = brokertest.Run(t, cfg)
	brokertest.WaitReady(t, b)
	c = dial(t, b.APIAddr())
	eventually(t, "the partition serves what precedes the damage", func() bool {
		r, err := fetch()
		return err == nil && r.Error == nil && len(r.Batches) > 0
	})
	if m := metricsText(t, b.HTTPAddr()); strings.Contains(m, "strata_replica_damaged{") {
		t.Fatal("damage still reported after the operator accepted the loss")
	}
}

// TestScrubFindsDamageInClosedSegment: the background scrub re-reads
// closed segments and reports a flipped byte in one, which recovery never
// reads, through strata_scrub_damaged_segments, while bytes read show in
// strata_scrub_read_bytes_total.
func TestScrubFindsDamageInClosedSegment(t *testing.T) {
	cfg := brokertest.Config(t, 1)
	cfg.ScrubBytesPerSecond, cfg.ScrubInterval = 64<<20, 50*time.Millisecond
	b := brokertest.Run(t, cfg)
	brokertest.WaitReady(t, b)
	c := dial(t, b.APIAddr())
	if _, err := c.CreateTopic(ctx(t), &v1.CreateTopicRequest{Name: "s", Partitions: 1, Configs: map[string]string{"segment.bytes": fmt.Sprint(2 << 20)}}); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		r, err := c.Produce(ctx(t), &v1.ProduceRequest{Topic: "s", Partitions: []*v1.ProducePartition{{Partition: 0, Batches: kib1Batch(t, fmt.Sprint(i))}}})
		if err != nil || r.Partitions[0].Error != nil {
			t.Fatalf("produce: %v %v", err, r)
		}
	}
	passes := regexp.MustCompile(`(?m)^strata_scrub_passes_total [1-9]`)
	eventually(t, "a scrub pass", func() bool { return passes.MatchString(metricsText(t, b.HTTPAddr())) })
	if m := metricsText(t, b.HTTPAddr()); strings.Contains(m, "strata_scrub_damaged_segments{") {
		t.Fatalf("damage reported on a sound log:\n%s", m)
	}
	segs, _ := filepath.Glob(filepath.Join(cfg.DataDir, "topics", "s-*", "0", "*.log"))
	sort.Strings(segs)
	if len(segs) < 3 {
		t.Fatalf("want closed segments, got %v", segs)
	}
	f, err := os.OpenFile(segs[1], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var one [1]byte
	f.ReadAt(one[:], 100_000)
	one[0] ^= 0x04
	f.WriteAt(one[:], 100_000)
	f.Close()
	eventually(t, "the scrub reports the damaged segment", func() bool {
		return strings.Contains(metricsText(t, b.HTTPAddr()), `strata_scrub_damaged_segments{partition="0",topic="s"} 1`)
	})
	if m := metricsText(t, b.HTTPAddr()); !strings.Contains(m, "strata_scrub_read_bytes_total") || strings.Contains(m, "strata_scrub_read_bytes_total 0\n") {
		t.Fatal("no scrub bytes counted")
	}
}

// TestDamagedFollowerRefetchesOverTheWire: three brokers, a partition with
// 20,000 acknowledged records of 1 KiB (1 MiB batches), one byte flipped
// in the middle of a follower's 20 MB active segment while it is stopped.
// On restart the follower cuts its log at the flip, keeps the bytes aside,
// abstains, and fetches the range back from the leader over the broker's
// own raft transport; then it votes again, its log is whole, and the mark
// and quarantine are gone.
func TestDamagedFollowerRefetchesOverTheWire(t *testing.T) {
	obs, logs := observer.New(zapcore.InfoLevel)
	cl := brokertest.StartObservedCluster(t, 3, obs)
	c := newClient(t, cl.APIAddrs())
	a := c.Admin()
	if _, err := a.CreateTopic(ctx(t), "f", 1, 3, map[string]string{"retention.ms": "-1"}); err != nil {
		t.Fatal(err)
	}
	leader := adminWaitInSync(t, a, "f").Partitions[0].Leader
	// 1 KiB records through the client's producer: its default 1 MiB
	// batches, its retries across a leader change.
	pr := c.NewProducer(client.DeliveryTimeout(60 * time.Second))
	recs := make([]*client.Record, 20_000)
	for i := range recs {
		v := []byte(fmt.Sprintf("r-%d-", i))
		recs[i] = &client.Record{Topic: "f", Value: append(v, bytes.Repeat([]byte{'x'}, 1024-len(v))...)}
	}
	if err := pr.ProduceSync(ctx(t), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	pr.Close(context.Background())
	d := adminWaitInSync(t, a, "f").Partitions[0]
	leader = d.Leader
	f := leader%3 + 1
	endOf := func(id uint32) string {
		return metricsText(t, cl.Broker(id).HTTPAddr())
	}
	whole := fmt.Sprintf(`strata_partition_log_end_offset{partition="0",topic="f"} %d`, d.HighWatermark)
	if d.HighWatermark < 20_000 {
		t.Fatalf("high watermark %d after 20,000 acknowledged records", d.HighWatermark)
	}
	eventually(t, "the follower holds every record", func() bool { return strings.Contains(endOf(f)+"\n", whole+"\n") })
	cl.Stop(f)
	segs, _ := filepath.Glob(filepath.Join(cl.Configs[f-1].DataDir, "topics", "f-*", "0", "*.log"))
	sort.Strings(segs)
	seg := segs[len(segs)-1]
	b, err := os.ReadFile(seg)
	if err != nil || len(b) < 20_000_000 {
		t.Fatalf("follower's active segment: %d bytes, %v", len(b), err)
	}
	b[len(b)/2] ^= 0x10
	if err := os.WriteFile(seg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cl.Restart(f)
	dir := filepath.Dir(seg)
	eventually(t, "the follower fetched the damaged range back and cleared its mark", func() bool {
		m := endOf(f)
		_, err := os.Stat(filepath.Join(dir, "damaged-index"))
		return strings.Contains(m+"\n", whole+"\n") && !strings.Contains(m, "strata_replica_damaged{") && os.IsNotExist(err) &&
			logs.FilterMessageSnippet("this replica votes again").Len() > 0
	})
	for _, msg := range []string{"segment: damage below the log tail", "replication: the log lost acknowledged entries; this replica does not vote", "replication: the damaged range is fetched back; this replica votes again"} {
		if logs.FilterMessageSnippet(msg).Len() != 1 {
			t.Fatalf("want one log entry %q, got %d", msg, logs.FilterMessageSnippet(msg).Len())
		}
	}
	if q, _ := filepath.Glob(seg + ".damaged-*"); len(q) != 0 {
		t.Fatalf("quarantine kept: %v", q)
	}
}

// TestScrubRepairsFromAnotherReplica: on three brokers, a flipped byte in
// a closed segment of one replica is found by the background scrub and
// rewritten from another replica's copy over the brokers' own API:
// strata_scrub_repaired_frames_total counts it, nothing stays reported
// damaged, and the segment reads whole again.
func TestScrubRepairsFromAnotherReplica(t *testing.T) {
	cl := brokertest.StartCluster(t, 3, func(c *broker.Config) {
		c.ScrubBytesPerSecond, c.ScrubInterval = 64<<20, 50*time.Millisecond
	})
	c := newClient(t, cl.APIAddrs())
	a := c.Admin()
	if _, err := a.CreateTopic(ctx(t), "r", 1, 3, map[string]string{"segment.bytes": fmt.Sprint(2 << 20)}); err != nil {
		t.Fatal(err)
	}
	leader := adminWaitInSync(t, a, "r").Partitions[0].Leader
	pr := c.NewProducer(client.DeliveryTimeout(60 * time.Second))
	recs := make([]*client.Record, 6000)
	for i := range recs {
		v := []byte(fmt.Sprintf("r-%d-", i))
		recs[i] = &client.Record{Topic: "r", Value: append(v, bytes.Repeat([]byte{'x'}, 1024-len(v))...)}
	}
	if err := pr.ProduceSync(ctx(t), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	pr.Close(context.Background())
	f := leader%3 + 1
	segs, _ := filepath.Glob(filepath.Join(cl.Configs[f-1].DataDir, "topics", "r-*", "0", "*.log"))
	sort.Strings(segs)
	if len(segs) < 3 {
		t.Fatalf("want closed segments, got %v", segs)
	}
	fh, err := os.OpenFile(segs[1], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var one [1]byte
	fh.ReadAt(one[:], 100_000)
	one[0] ^= 0x04
	fh.WriteAt(one[:], 100_000)
	fh.Close()
	repaired := regexp.MustCompile(`(?m)^strata_scrub_repaired_frames_total 1$`)
	eventually(t, "the scrub repairs the frame", func() bool { return repaired.MatchString(metricsText(t, cl.Broker(f).HTTPAddr())) })
	if m := metricsText(t, cl.Broker(f).HTTPAddr()); strings.Contains(m, "strata_scrub_damaged_segments{") {
		t.Fatal("damage still reported after the repair")
	}
	cs, err := segment.Check(filepath.Dir(segs[1]), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.File == filepath.Base(segs[1]) && c.Status != segment.CheckOK {
			t.Fatalf("repaired segment: %+v", c)
		}
	}
}
