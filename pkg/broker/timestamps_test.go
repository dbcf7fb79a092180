package broker_test

import (
	"errors"
	"testing"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/brokertest"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/record"
)

// stamped encodes values as one batch with the given timestamps.
func stamped(t *testing.T, c record.Compression, ts ...time.Time) []byte {
	t.Helper()
	recs := make([]record.Record, len(ts))
	for i := range ts {
		recs[i] = record.Record{Value: []byte{byte('a' + i)}, Timestamp: ts[i]}
	}
	b, err := record.Encode(recs, record.EncodeOptions{Compression: c, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTimestampWindow: with CreateTime, a batch holding a record stamped
// beyond message.timestamp.after.max.ms (default 1 h) in the future, or
// beyond before.max.ms in the past when the topic sets it, is refused and
// nothing of it is stored; inside the window records keep their time.
func TestTimestampWindow(t *testing.T) {
	c := dial(t, brokertest.Start(t))
	for name, cfg := range map[string]map[string]string{
		"defaults": nil,
		"pastday":  {"message.timestamp.before.max.ms": "86400000", "message.timestamp.after.max.ms": "60000"},
	} {
		if _, err := c.CreateTopic(ctx(t), &v1.CreateTopicRequest{Name: name, Partitions: 1, Configs: cfg}); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	produce := func(topic string, batch []byte) error {
		resp, err := c.Produce(ctx(t), &v1.ProduceRequest{Topic: topic, Partitions: []*v1.ProducePartition{{Batches: batch}}})
		if err != nil {
			t.Fatal(err)
		}
		if e := resp.Partitions[0].Error; e != nil {
			return apierr.FromProto(e)
		}
		if resp.Partitions[0].LogAppendTimeMs != -1 {
			t.Fatalf("CreateTime topic answered log append time %d", resp.Partitions[0].LogAppendTimeMs)
		}
		return nil
	}
	cases := []struct {
		topic string
		ts    []time.Time
		ok    bool
	}{
		{"defaults", []time.Time{now, now.Add(30 * time.Minute)}, true},
		{"defaults", []time.Time{now, now.Add(2 * time.Hour)}, false},
		{"defaults", []time.Time{now.Add(24 * 365 * 100 * time.Hour)}, false},
		{"defaults", []time.Time{time.UnixMilli(0)}, true}, // the past is unbounded by default
		{"pastday", []time.Time{now.Add(-time.Hour), now}, true},
		{"pastday", []time.Time{time.UnixMilli(0), now}, false},
		{"pastday", []time.Time{now.Add(-48 * time.Hour)}, false},
		{"pastday", []time.Time{now.Add(10 * time.Minute)}, false},
	}
	stored := map[string]int64{}
	for _, tc := range cases {
		for _, comp := range []record.Compression{record.None, record.LZ4} {
			err := produce(tc.topic, stamped(t, comp, tc.ts...))
			switch {
			case tc.ok && err != nil:
				t.Fatalf("%s %v: refused: %v", tc.topic, tc.ts, err)
			case !tc.ok && !errors.Is(err, apierr.ErrInvalidRequest):
				t.Fatalf("%s %v: got %v, want INVALID_REQUEST", tc.topic, tc.ts, err)
			case tc.ok:
				stored[tc.topic] += int64(len(tc.ts))
			}
		}
	}
	for topic, want := range stored {
		lo, err := c.ListOffsets(ctx(t), &v1.ListOffsetsRequest{Partitions: []*v1.ListOffsetsPartition{{Topic: topic}}})
		if err != nil || lo.Partitions[0].Offset != want {
			t.Fatalf("%s: high watermark %v (%v), want %d: a refused batch was stored", topic, lo, err, want)
		}
	}
}

// TestLogAppendTime: with message.timestamp.type=LogAppendTime the leader
// stamps each batch with its clock; every record reads back with that time
// and the response says it. A corrupt batch is still refused, not
// re-checksummed into a valid one.
func TestLogAppendTime(t *testing.T) {
	c := dial(t, brokertest.Start(t))
	if _, err := c.CreateTopic(ctx(t), &v1.CreateTopicRequest{Name: "lat", Partitions: 1,
		Configs: map[string]string{"message.timestamp.type": "LogAppendTime"}}); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(1000 * time.Hour)
	var stamps []int64
	for _, comp := range []record.Compression{record.None, record.Zstd} {
		before := time.Now().UnixMilli()
		resp, err := c.Produce(ctx(t), &v1.ProduceRequest{Topic: "lat", Partitions: []*v1.ProducePartition{{
			Batches: stamped(t, comp, time.UnixMilli(0), future)}}})
		if err != nil || resp.Partitions[0].Error != nil {
			t.Fatalf("produce: %v %v", resp, err)
		}
		at := resp.Partitions[0].LogAppendTimeMs
		if at < before || at > time.Now().UnixMilli() {
			t.Fatalf("log append time %d, produced between %d and now", at, before)
		}
		stamps = append(stamps, at, at)
	}
	corrupt := stamped(t, record.None, time.Now())
	corrupt[len(corrupt)-1] ^= 0xff
	resp, err := c.Produce(ctx(t), &v1.ProduceRequest{Topic: "lat", Partitions: []*v1.ProducePartition{{Batches: corrupt}}})
	if err != nil || !errors.Is(apierr.FromProto(resp.Partitions[0].Error), apierr.ErrCorruptBatch) {
		t.Fatalf("corrupt batch: %v %v", resp, err)
	}

	f, err := c.Fetch(ctx(t), &v1.FetchRequest{Partitions: []*v1.FetchPartition{{Topic: "lat", Partition: 0}}})
	if err != nil || f.Partitions[0].Error != nil {
		t.Fatalf("fetch: %v %v", f, err)
	}
	var got []int64
	for rest := f.Partitions[0].Batches; len(rest) > 0; {
		batch, h, r, err := record.Next(rest)
		if err != nil {
			t.Fatal(err)
		}
		rest = r
		if !h.IsLogAppendTime() {
			t.Fatalf("stored batch not marked log-append-time: %+v", h)
		}
		recs, err := record.Decode(batch, record.DecodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range recs {
			got = append(got, rec.Timestamp.UnixMilli())
		}
	}
	if len(got) != len(stamps) {
		t.Fatalf("read %d records, want %d", len(got), len(stamps))
	}
	for i := range got {
		if got[i] != stamps[i] {
			t.Fatalf("record %d reads time %d, the broker stamped %d", i, got[i], stamps[i])
		}
	}
}
