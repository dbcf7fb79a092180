package broker

import (
	"fmt"
	"testing"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/metadata"
	"github.com/stratalog/strata/pkg/record"
	"github.com/stratalog/strata/pkg/segment"
)

// replicaLog writes batches of 3 records each to a fresh log, as a
// replica stores them (raft index i+1, offsets assigned by the log); the
// batch at base offset differAt holds other values (-1: none).
func replicaLog(t *testing.T, batches int, differAt int64) *segment.Log {
	t.Helper()
	l, err := segment.Open(t.TempDir(), segment.Options{MaxSegmentBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	for i := range batches {
		tag := "same"
		if int64(i*3) == differAt {
			tag = "other"
		}
		recs := make([]record.Record, 3)
		for j := range recs {
			recs[j] = record.Record{Value: fmt.Appendf(nil, "%s-%d-%d", tag, i, j), Timestamp: time.UnixMilli(1_700_000_000_000)}
		}
		b, err := record.Encode(recs, record.EncodeOptions{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Append(segment.Entry{Index: uint64(i + 1), Term: 1, Type: segment.EntryBatch, Data: b}); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// verifyLogs runs narrow over logs as replicas 1, 2, 3, ..., counting the
// rounds.
func verifyLogs(t *testing.T, from, to int64, logs ...*segment.Log) (first int64, agree bool, rounds int) {
	t.Helper()
	first, agree = narrow(from, to, len(logs), func(lo, hi, step int64) map[metadata.NodeID][]*v1.OffsetRange {
		rounds++
		out := map[metadata.NodeID][]*v1.OffsetRange{}
		for i, l := range logs {
			sums, err := l.Checksums(lo, hi, step)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range sums {
				out[metadata.NodeID(i+1)] = append(out[metadata.NodeID(i+1)], &v1.OffsetRange{FromOffset: s.From, FirstBatch: s.FirstBatch, Batches: s.Batches, Bytes: s.Bytes, Crc: s.CRC})
			}
			if _, ok := out[metadata.NodeID(i+1)]; !ok {
				out[metadata.NodeID(i+1)] = nil
			}
		}
		return out
	})
	return first, agree, rounds
}

func TestVerifyNamesTheFirstDifferingBatch(t *testing.T) {
	const batches = 5000 // offsets 0..14999
	same := replicaLog(t, batches, -1)
	for _, differAt := range []int64{0, 3, 7497, 14997} {
		t.Run(fmt.Sprint(differAt), func(t *testing.T) {
			other := replicaLog(t, batches, differAt)
			first, agree, rounds := verifyLogs(t, 0, batches*3, same, replicaLog(t, batches, -1), other)
			if agree || first != differAt {
				t.Fatalf("verify = first difference %d, agree %v; want %d", first, agree, differAt)
			}
			if rounds > 4 {
				t.Fatalf("%d rounds for 15,000 offsets in runs of 64", rounds)
			}
		})
	}
	first, agree, _ := verifyLogs(t, 0, batches*3, same, replicaLog(t, batches, -1))
	if !agree || first != -1 {
		t.Fatalf("identical replicas: first difference %d, agree %v", first, agree)
	}
	// Only part of the range compared: the batch that differs is past it.
	first, agree, _ = verifyLogs(t, 0, 7497, same, replicaLog(t, batches, 7497))
	if !agree || first != -1 {
		t.Fatalf("difference past the range: first %d, agree %v", first, agree)
	}
	// A replica that lacks batches the others have differs where they start.
	short := replicaLog(t, 4000, -1)
	first, agree, _ = verifyLogs(t, 0, batches*3, same, short)
	if agree || first != 12000 {
		t.Fatalf("a replica holding 4,000 of 5,000 batches: first difference %d, agree %v; want 12000", first, agree)
	}
}
