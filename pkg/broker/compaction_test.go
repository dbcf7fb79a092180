package broker_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/brokertest"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/broker"
	"github.com/stratalog/strata/pkg/record"
)

// Compaction on the replicated log: every replica compacts towards the
// target its leader committed, so after any leader change consumers read
// the same compacted history.

// produceKV writes one record per call to partition 0 (value nil = a
// tombstone) and returns its offset.
func produceKV(t *testing.T, addrs []string, topic, key string, value []byte) int64 {
	t.Helper()
	b, err := record.Encode([]record.Record{{Key: []byte(key), Value: value, Timestamp: time.Now()}},
		record.EncodeOptions{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1})
	if err != nil {
		t.Fatal(err)
	}
	return onLeader(t, addrs, func(c v1.StrataClient) (int64, error) {
		resp, err := c.Produce(ctx(t), &v1.ProduceRequest{Topic: topic, Partitions: []*v1.ProducePartition{{Partition: 0, Batches: b}}})
		if err != nil {
			return 0, err
		}
		return resp.Partitions[0].BaseOffset, apierr.FromProto(resp.Partitions[0].Error)
	})
}

type kv struct {
	offset     int64
	key, value string
	tombstone  bool
}

// readKV reads partition 0 from the start to the high watermark through
// broker addr, which must lead it (NOT_LEADER is returned).
func readKV(t *testing.T, addr, topic string) ([]kv, error) {
	t.Helper()
	c := dial(t, addr)
	var out []kv
	for offset := int64(0); ; {
		resp, err := c.Fetch(ctx(t), &v1.FetchRequest{Partitions: []*v1.FetchPartition{{Topic: topic, Partition: 0, Offset: offset}}, MaxBytes: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		r := resp.Partitions[0]
		if err := apierr.FromProto(r.Error); err != nil {
			if errors.Is(err, apierr.ErrNotLeader) {
				return nil, err
			}
			t.Fatalf("fetch at %d from %s: %v", offset, addr, err)
		}
		rest := r.Batches
		if len(rest) == 0 {
			return out, nil
		}
		for len(rest) > 0 {
			b, h, more, err := record.Next(rest)
			if err != nil {
				t.Fatal(err)
			}
			rest = more
			recs, err := record.Decode(b, record.DecodeOptions{})
			if err != nil {
				t.Fatalf("decode batch at %d: %v", h.BaseOffset, err)
			}
			for _, rec := range recs {
				if rec.Offset >= offset {
					out = append(out, kv{rec.Offset, string(rec.Key), string(rec.Value), rec.Value == nil})
				}
			}
			offset = max(offset, h.NextOffset())
		}
		if offset >= r.HighWatermark {
			return out, nil
		}
	}
}

func logBytes(t *testing.T, cfg broker.Config, topic string) int64 {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(cfg.DataDir, "topics", topic+"-*", "0", "*.log"))
	var n int64
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			n += st.Size()
		}
	}
	return n
}

func TestCompactionOnEveryReplicaAndLeaderChange(t *testing.T) {
	c := brokertest.StartCluster(t, 3, func(cfg *broker.Config) {
		cfg.RetentionCheckInterval = 50 * time.Millisecond
		cfg.CleanerBytesPerSecond = 0
	})
	addrs := c.APIAddrs()
	a := newClient(t, addrs).Admin()
	if _, err := a.CreateTopic(ctx(t), "cmp", 1, 3, map[string]string{
		"segment.bytes": "4096", "max.message.bytes": "2048", "cleanup.policy": "compact", "delete.retention.ms": "0",
	}); err != nil {
		t.Fatal(err)
	}
	adminWaitInSync(t, a, "cmp")

	// 12 rounds over 8 keys, then a tombstone for k0, then filler on other
	// keys so that all of it lands in closed segments.
	latest := map[string]int64{}
	value := func(key string, round int) []byte { return fmt.Appendf(nil, "%s-round-%d-%0200d", key, round, 0) }
	for round := range 12 {
		for k := range 8 {
			key := fmt.Sprintf("k%d", k)
			latest[key] = produceKV(t, addrs, "cmp", key, value(key, round))
		}
	}
	latest["k0"] = produceKV(t, addrs, "cmp", "k0", nil)
	for i := range 40 {
		key := fmt.Sprintf("f%d", i)
		latest[key] = produceKV(t, addrs, "cmp", key, value(key, 0))
	}
	// Every replica compacts; they end up the same size, well below the
	// 136 records of about 300 bytes produced.
	var sizes []int64
	deadline := time.Now().Add(20 * time.Second)
	for {
		sizes = sizes[:0]
		for _, cfg := range c.Configs {
			sizes = append(sizes, logBytes(t, cfg, "cmp"))
		}
		if sizes[0] < 136*300*2/3 && sizes[0] == sizes[1] && sizes[1] == sizes[2] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replicas not compacted alike within 20s: log sizes %v", sizes)
		}
		time.Sleep(20 * time.Millisecond) // polling files on disk; nothing to wait on
	}

	// Each replica, as leader, serves the same compacted history.
	var first []kv
	for id := uint32(1); id <= 3; id++ {
		// The rebalancer may hand leadership back to the preferred replica
		// meanwhile: transfer again until the read completes.
		var got []kv
		eventually(t, fmt.Sprintf("a full read from broker %d as leader", id), func() bool {
			if _, err := a.TransferLeader(ctx(t), "cmp", 0, id); err != nil {
				return false
			}
			var err error
			got, err = readKV(t, c.Broker(id).APIAddr(), "cmp")
			return err == nil
		})
		if first == nil {
			first = got
			checkCompacted(t, got, latest)
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(first) {
			t.Fatalf("broker %d serves a different history:\n%v\nbroker 1 served:\n%v", id, got, first)
		}
	}
}

// checkCompacted checks a compacted read against the model: every key's
// latest record is there at its offset, k0's tombstone expired, and no
// superseded record is left below the last key's latest offset except in
// the active segment's tail.
func checkCompacted(t *testing.T, got []kv, latest map[string]int64) {
	t.Helper()
	at := map[int64]kv{}
	seen := map[string]int{}
	for _, r := range got {
		at[r.offset] = r
		seen[r.key]++
	}
	for key, off := range latest {
		if key == "k0" {
			continue
		}
		if r, ok := at[off]; !ok || r.key != key {
			t.Errorf("latest record of %s at %d is missing", key, off)
		}
	}
	if r, ok := at[latest["k0"]]; ok && r.tombstone && seen["k0"] == 1 {
		// The tombstone may still sit in the active segment; then it is
		// the only k0 left.
	} else if seen["k0"] != 0 {
		t.Errorf("k0 was deleted with a tombstone (delete.retention.ms=0), yet %d k0 records remain", seen["k0"])
	}
	if len(got) > len(latest)+8 {
		t.Errorf("%d records after compaction, want about %d", len(got), len(latest))
	}
}

// min.compaction.lag.ms: records younger than it are never compacted; once
// the (injected) clock passes it, they are.
func TestCompactionLag(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	cfg := brokertest.Config(t, 1)
	cfg.RetentionCheckInterval = 20 * time.Millisecond
	cfg.CleanerBytesPerSecond = 0
	cfg.Clock = clock.Now
	b := brokertest.Run(t, cfg)
	addrs := []string{b.APIAddr()}
	a := newClient(t, addrs).Admin()
	if _, err := a.CreateTopic(ctx(t), "lag", 1, 1, map[string]string{
		"segment.bytes": "4096", "max.message.bytes": "2048", "cleanup.policy": "compact", "min.compaction.lag.ms": "3600000",
	}); err != nil {
		t.Fatal(err)
	}
	for round := range 10 {
		for k := range 4 {
			produceKV(t, addrs, "lag", fmt.Sprintf("k%d", k), fmt.Appendf(nil, "round-%d-%0300d", round, 0))
		}
	}
	before := logBytes(t, cfg, "lag")
	time.Sleep(200 * time.Millisecond) // ten retention checks; nothing may happen, so nothing to wait on
	if got := logBytes(t, cfg, "lag"); got != before {
		t.Fatalf("records younger than min.compaction.lag.ms were compacted: %d bytes, was %d", got, before)
	}
	clock.Add(2 * time.Hour)
	eventually(t, "compaction once the lag has passed", func() bool { return logBytes(t, cfg, "lag") < before/2 })
}
