package segment

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stratalog/strata/pkg/record"
)

// The compaction benchmarks use a partition of 10,000 distinct keys with
// 1 KiB values, in batches of 16 records, uncompressed, in about 16 closed
// segments. Its size is STRATA_BENCH_COMPACT_BYTES (default 64 MiB);
// STRATA_BENCH_COMPACT_BYTES=1073741824 gives the 1 GiB figure:
//
//	STRATA_BENCH_COMPACT_BYTES=1073741824 go test ./pkg/segment \
//	    -run XXX -bench 'Compact' -benchtime 1x

func benchCompactBytes(b *testing.B) int64 {
	if s := os.Getenv("STRATA_BENCH_COMPACT_BYTES"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			b.Fatalf("STRATA_BENCH_COMPACT_BYTES=%q: want a positive byte count", s)
		}
		return n
	}
	return 64 << 20
}

// buildBenchLog writes the benchmark partition into dir, closed, and
// returns its options.
func buildBenchLog(b *testing.B, dir string, size int64) Options {
	o := DefaultOptions()
	o.MaxSegmentBytes = max(size/16, 1<<20)
	l := mustOpen(b, dir, o)
	rng := rand.New(rand.NewSource(1))
	value := make([]byte, 1024)
	idx := uint64(1)
	for l.Size() < size {
		recs := make([]record.Record, 16)
		for i := range recs {
			rng.Read(value)
			recs[i] = record.Record{Key: []byte(fmt.Sprintf("key-%05d", rng.Intn(10000))), Value: append([]byte(nil), value...), Timestamp: time.UnixMilli(int64(idx))}
		}
		data, err := record.Encode(recs, record.EncodeOptions{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := l.Append(Entry{Index: idx, Term: 1, Type: EntryBatch, Data: data}); err != nil {
			b.Fatal(err)
		}
		idx++
	}
	if err := l.Roll(); err != nil {
		b.Fatal(err)
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	return o
}

// BenchmarkCompact compacts a fresh copy of the partition per iteration;
// MB/s is of the log's size before compaction.
func BenchmarkCompact(b *testing.B) {
	size := benchCompactBytes(b)
	src := b.TempDir()
	o := buildBenchLog(b, src, size)
	b.SetBytes(size)
	b.ResetTimer()
	var st CompactStats
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := b.TempDir()
		copyDir(b, src, dir)
		syscall.Sync() // the copy's dirty pages must not slow the run
		l := mustOpen(b, dir, o)
		b.StartTimer()
		var err error
		st, err = l.Compact(context.Background(), CompactOptions{UpTo: l.NextOffset()})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		l.Close()
		os.RemoveAll(dir)
		b.StartTimer()
	}
	b.ReportMetric(float64(st.BytesReclaimed)/float64(size), "reclaimed/size")
}

// BenchmarkAppendWhileCompacting measures the writer's append throughput
// (batches of 100 records of 1 KiB, no fsync, as BenchmarkAppend) while
// Compact runs over the partition, then, on a fresh copy of the
// partition, for as many bytes with no Compact running, and reports both:
// the drop is the cost compaction imposes on producers. Dirty pages are
// flushed (untimed) before each phase, so that neither pays for the
// other's writeback.
func BenchmarkAppendWhileCompacting(b *testing.B) {
	size := benchCompactBytes(b)
	src := b.TempDir()
	o := buildBenchLog(b, src, size)
	data := batch(b, 100, 0, 1024)
	// phase appends n batches (until Compact ends when compacting) to a
	// fresh copy, returning how many and how long it took.
	phase := func(compacting bool, n int) (int, time.Duration) {
		dir := b.TempDir()
		defer os.RemoveAll(dir)
		copyDir(b, src, dir)
		syscall.Sync()
		l := mustOpen(b, dir, o)
		defer l.Close()
		idx := l.LastIndex() + 1
		done := make(chan error, 1)
		start := time.Now()
		if compacting {
			go func() {
				_, err := l.Compact(context.Background(), CompactOptions{UpTo: l.NextOffset()})
				done <- err
			}()
		}
		for i := 0; compacting || i < n; i++ {
			select {
			case err := <-done:
				if err != nil {
					b.Fatal(err)
				}
				return i, time.Since(start)
			default:
			}
			if _, err := l.Append(Entry{Index: idx, Term: 1, Type: EntryBatch, Data: data}); err != nil {
				b.Fatal(err)
			}
			idx++
		}
		return n, time.Since(start)
	}
	var busy, idle, compact float64
	for i := 0; i < b.N; i++ {
		n, elapsed := phase(true, 0)
		busy += float64(n*len(data)) / elapsed.Seconds() / 1e6
		compact += float64(size) / elapsed.Seconds() / 1e6
		_, elapsed = phase(false, n)
		idle += float64(n*len(data)) / elapsed.Seconds() / 1e6
	}
	b.ReportMetric(busy/float64(b.N), "append-MB/s-compacting")
	b.ReportMetric(idle/float64(b.N), "append-MB/s-idle")
	b.ReportMetric(compact/float64(b.N), "compact-MB/s")
}
