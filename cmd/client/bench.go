package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/spf13/cobra"
)

func newBenchCmd(e *env) *cobra.Command {
	var progress bool
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure produce and consume throughput and latency",
		Long: `Benchmarks against a running cluster, reported like "nats bench":
records/s, MB/s (10^6 bytes of keys and values) and latency percentiles
(p50, p90, p99, p99.9 and the maximum) from an HdrHistogram, over the
number of records the report gives. Each run is bounded by --records and
by --duration; bench consume also stops when no record arrives for --idle.

Progress: when stdout is a terminal, a line on it is redrawn every 200ms.
Otherwise (a file, a pipe, a CI log) a line a second goes to stderr, so a
log shows a stall: records so far, records/s and MB/s over the last
second, time elapsed. With -o json those lines are JSON objects marked
"progress": true. A run shorter than a second prints none; the report
alone is on stdout. --progress=false turns progress off.`,
		Example: `  strata bench produce --topic bench --records 1000000 --record-size 1024 --producers 4
  strata bench produce --topic bench --records 10000 --sync
  strata bench consume --topic bench --records 1000000 -o json`,
	}
	cmd.PersistentFlags().BoolVar(&progress, "progress", true, "show progress: redrawn on a terminal, a line a second on stderr otherwise")
	cmd.AddCommand(newBenchProduceCmd(e, &progress), newBenchConsumeCmd(e, &progress))
	return cmd
}

// benchRun is the shared bookkeeping of a benchmark: counts, the latency
// histogram, the progress line and the report.
type benchRun struct {
	e       *env
	total   int64
	start   time.Time
	mu      sync.Mutex
	hist    *hdrhistogram.Histogram // microseconds
	records int64
	bytes   int64
	end     time.Time // when the measured part ended; zero while running
}

// startBench starts the bookkeeping of a run of total records and, with
// progress, its progress lines (bench_progress.go). stop ends the
// progress and waits for it; it may be called more than once.
func (e *env) startBench(ctx context.Context, total int64, progress bool) (run *benchRun, stop func()) {
	run = &benchRun{e: e, total: total, start: time.Now(), hist: hdrhistogram.New(1, int64(time.Hour/time.Microsecond), 3)}
	if !progress {
		return run, func() {}
	}
	progCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { run.progress(progCtx) })
	return run, func() { cancel(); wg.Wait() }
}

func (b *benchRun) observe(records, bytes int64, latency time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.records += records
	b.bytes += bytes
	_ = b.hist.RecordValues(max(1, latency.Microseconds()), records)
}

// finish ends the measured part of the run at t (the last record, when
// the run then waited for more in vain).
func (b *benchRun) finish(t time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.end = t
}

func (b *benchRun) report() benchJSON {
	b.mu.Lock()
	defer b.mu.Unlock()
	end := b.end
	if end.IsZero() {
		end = time.Now()
	}
	el := end.Sub(b.start).Seconds()
	if el <= 0 || b.records == 0 {
		el = max(el, 1e-9) // no rate without records: 0, not NaN (JSON has no NaN)
	}
	ms := func(q float64) float64 { return float64(b.hist.ValueAtQuantile(q)) / 1000 }
	return benchJSON{
		Records:       b.records,
		RecordsPerSec: float64(b.records) / el,
		MBPerSec:      float64(b.bytes) / 1e6 / el,
		P50Ms:         ms(50),
		P90Ms:         ms(90),
		P99Ms:         ms(99),
		P999Ms:        ms(99.9),
		MaxMs:         float64(b.hist.Max()) / 1000,
		ElapsedSec:    el,
	}
}

func (b *benchRun) print(w io.Writer, what string) error {
	r := b.report()
	if b.e.output == "json" {
		return printJSON(w, r)
	}
	_, err := fmt.Fprintf(w, "%s %s in %.2fs: %.0f records/s, %.2f MB/s\n%s latency: p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, max %.3f ms\n",
		what, plural(r.Records, "record"), r.ElapsedSec, r.RecordsPerSec, r.MBPerSec, what, r.P50Ms, r.P90Ms, r.P99Ms, r.P999Ms, r.MaxMs)
	return err
}
