package replication

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/stratalog/strata/pkg/record"
	"github.com/stratalog/strata/pkg/segment"
)

// TestRetentionCompactionRestartsAgainstModel drives a three-replica group
// through random produce, delete-records, compaction and replica restarts
// (a replica may stay down while the others delete the log it would need,
// so it comes back by snapshot install), then checks every replica
// against a model: the same records from the same log start, each one as
// produced at its offset, and every key's latest record present unless a
// tombstone expired it.
func TestRetentionCompactionRestartsAgainstModel(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { modelRun(t, seed) })
	}
}

type modelRecord struct {
	key   string
	value []byte // nil = tombstone
}

func modelRun(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 42))
	c := &cluster{t: t, logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), fsync: true, segBytes: 2048}
	c.start(3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	produced := map[int64]modelRecord{} // offset -> record
	logStart := int64(0)
	var down *node
	for step := range 120 {
		switch op := rng.IntN(20); {
		case op < 13: // produce 1-3 records
			n := 1 + rng.IntN(3)
			recs := make([]record.Record, n)
			for i := range recs {
				key := fmt.Sprintf("k%d", rng.IntN(6))
				var v []byte
				if rng.IntN(8) > 0 {
					v = fmt.Appendf(nil, "%s@%d.%d-%s", key, step, i, bytes.Repeat([]byte{'x'}, 100))
				}
				recs[i] = record.Record{Key: []byte(key), Value: v, Timestamp: time.UnixMilli(1_700_000_000_000 + int64(step))}
			}
			b, err := record.Encode(recs, record.EncodeOptions{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1})
			if err != nil {
				t.Fatal(err)
			}
			base, _, err := c.apply(ctx, b)
			if err != nil {
				t.Fatalf("step %d: produce: %v", step, err)
			}
			for i, r := range recs {
				produced[base+int64(i)] = modelRecord{string(r.Key), r.Value}
			}
		case op < 15: // delete records up to a random point
			l := c.leader()
			to := logStart + rng.Int64N(l.g.HighWatermark()-logStart+1)
			got, err := l.g.SetLogStart(ctx, to)
			if err != nil {
				t.Fatalf("step %d: set log start %d: %v", step, to, err)
			}
			logStart = max(logStart, to)
			if got != logStart {
				t.Fatalf("step %d: log start %d, want %d", step, got, logStart)
			}
		case op < 17: // compact up to the high watermark; tombstones expire half the time
			l := c.leader()
			retention := time.Duration(0)
			if rng.IntN(2) == 0 {
				retention = 1000 * time.Hour
			}
			if err := l.g.RequestCompaction(ctx, l.g.HighWatermark(), time.UnixMilli(1_700_000_000_000+200), retention); err != nil {
				t.Fatalf("step %d: request compaction: %v", step, err)
			}
		case op < 18: // every open replica does its housekeeping
			for _, nd := range c.open_() {
				housekeep(t, ctx, nd)
			}
		case op < 19: // stop a follower, or bring the stopped one back
			if down != nil {
				c.restart(down)
				down = nil
				break
			}
			for _, nd := range c.open_() {
				if !nd.g.IsLeader() {
					down = nd
					break
				}
			}
			c.stop(down)
		default: // restart a follower at once
			for _, nd := range c.open_() {
				if !nd.g.IsLeader() {
					c.stop(nd)
					c.restart(nd)
					break
				}
			}
		}
	}
	if down != nil {
		c.restart(down)
	}
	l := c.leader()
	hwm := l.g.HighWatermark()
	c.converge(hwm)
	// Let every replica apply the last commands and catch up on compaction.
	waitFor(t, 20*time.Second, "every replica at the same log start and target", func() bool {
		for _, nd := range c.open_() {
			if nd.g.LogStartOffset() != logStart || nd.g.CompactionTarget() != l.g.CompactionTarget() {
				return false
			}
		}
		return true
	})
	// Records below the target are compacted only in closed segments, and
	// segment boundaries may differ between replicas (an installed log is
	// re-segmented), so replicas must agree below the lowest active segment
	// and at or above the target; in between one may not have compacted yet.
	target := l.g.CompactionTarget()
	cut := target.UpTo
	for _, nd := range c.open_() {
		segs := nd.g.Log().Segments()
		cut = min(cut, segs[len(segs)-1].BaseOffset)
	}
	var first string
	for i, nd := range c.open_() {
		housekeep(t, ctx, nd)
		got := readFrom(t, nd.g, logStart, hwm)
		checkModel(t, nd, got, produced, logStart, hwm, target)
		var flat []string
		for _, off := range sortedOffsets(got) {
			if off < cut || off >= target.UpTo {
				flat = append(flat, fmt.Sprintf("%d:%s=%q", off, got[off].key, got[off].value))
			}
		}
		if i == 0 {
			first = fmt.Sprint(flat)
		} else if fmt.Sprint(flat) != first {
			t.Fatalf("replica %s holds different records than %s below %d and from %d:\n%v\n%v", nd.id, c.open_()[0].id, cut, target.UpTo, flat, first)
		}
	}
	t.Logf("seed %d: %d records produced, log start %d, high watermark %d, compaction target %d, compared below %d", seed, len(produced), logStart, hwm, target.UpTo, cut)
}

func housekeep(t *testing.T, ctx context.Context, nd *node) {
	t.Helper()
	if _, err := nd.g.Compact(ctx, segment.CompactOptions{}); err != nil {
		t.Fatalf("%s: compact: %v", nd.id, err)
	}
	if _, err := nd.g.DeleteSegments(ctx); err != nil {
		t.Fatalf("%s: delete segments: %v", nd.id, err)
	}
}

// readFrom reads the records of g's log in [from, hwm), by offset.
func readFrom(t *testing.T, g *Group, from, hwm int64) map[int64]modelRecord {
	t.Helper()
	out := map[int64]modelRecord{}
	for off := from; off < hwm; {
		b, err := g.Log().Read(off, hwm, 1<<20)
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		for rest := b; len(rest) > 0; {
			batch, h, r, err := record.Next(rest)
			if err != nil {
				t.Fatal(err)
			}
			recs, err := record.Decode(batch, record.DecodeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, rec := range recs {
				if rec.Offset >= from {
					out[rec.Offset] = modelRecord{string(rec.Key), rec.Value}
				}
			}
			off, rest = h.NextOffset(), r
		}
	}
	return out
}

func sortedOffsets(m map[int64]modelRecord) []int64 {
	var out []int64
	for o := range m {
		out = append(out, o)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// checkModel: every record read is the one produced at its offset; every
// record at or above the compaction target is there; below it, every
// key's latest record is there unless it is a tombstone.
func checkModel(t *testing.T, nd *node, got, produced map[int64]modelRecord, from, hwm int64, target CompactionTarget) {
	t.Helper()
	// A produce whose outcome was indeterminate is retried, so a record
	// may also sit, identical, at an offset the model did not note.
	sent := map[string]bool{}
	for _, p := range produced {
		sent[p.key+"="+string(p.value)] = true
	}
	for off, r := range got {
		p, ok := produced[off]
		if ok && (p.key != r.key || !bytes.Equal(p.value, r.value)) || !ok && !sent[r.key+"="+string(r.value)] {
			t.Fatalf("%s: offset %d holds %s=%q, produced %s=%q", nd.id, off, r.key, r.value, p.key, p.value)
		}
	}
	latest := map[string]int64{}
	for off, p := range produced {
		if off >= from && off < target.UpTo && off > latestOr(latest, p.key) {
			latest[p.key] = off
		}
	}
	for off := from; off < hwm; off++ {
		p := produced[off]
		_, have := got[off]
		switch {
		case off >= target.UpTo:
			if !have {
				t.Fatalf("%s: offset %d (%s) at or above the compaction target %d is gone", nd.id, off, p.key, target.UpTo)
			}
		case latest[p.key] == off && p.value != nil:
			if !have {
				t.Fatalf("%s: the latest record of %s (offset %d) is gone", nd.id, p.key, off)
			}
		}
	}
}

func latestOr(m map[string]int64, k string) int64 {
	if v, ok := m[k]; ok {
		return v
	}
	return -1
}
