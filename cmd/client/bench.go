package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/spf13/cobra"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/client"
)

func newBenchCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure produce and consume throughput and latency",
		Long: `Benchmarks against a running cluster, reported like "nats bench":
records/s, MB/s (10^6 bytes of keys and values) and latency percentiles
from an HdrHistogram, over the number of records the report gives. A
progress line is redrawn every 200ms when stdout is a terminal. Each run
is bounded by --records and by --duration; bench consume also stops when
no record arrives for --idle.`,
		Example: `  strata bench produce --topic bench --records 1000000 --record-size 1024 --producers 4
  strata bench consume --topic bench --records 1000000 -o json`,
	}
	cmd.AddCommand(newBenchProduceCmd(e), newBenchConsumeCmd(e))
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

// startBench starts the bookkeeping of a run of total records and its
// progress line. stop ends the progress line and waits for it; it may be
// called more than once.
func (e *env) startBench(ctx context.Context, total int64) (run *benchRun, stop func()) {
	run = &benchRun{e: e, total: total, start: time.Now(), hist: hdrhistogram.New(1, int64(time.Hour/time.Microsecond), 3)}
	progCtx, cancel := context.WithCancel(ctx)
	var progress sync.WaitGroup
	progress.Go(func() { run.progress(progCtx) })
	return run, func() { cancel(); progress.Wait() }
}

func (b *benchRun) observe(records, bytes int64, latency time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.records += records
	b.bytes += bytes
	_ = b.hist.RecordValues(max(1, latency.Microseconds()), records)
}

// progress redraws the progress line until ctx ends, when stdout is a
// terminal; run it on a goroutine the caller waits for.
func (b *benchRun) progress(ctx context.Context) {
	if !b.e.isTerminal() {
		return
	}
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprint(b.e.stdout, "\r\033[K")
			return
		case <-t.C:
			r := b.report()
			fmt.Fprintf(b.e.stdout, "\r\033[K%d/%d records  %.0f records/s  %.2f MB/s  p99 %.2f ms",
				r.Records, b.total, r.RecordsPerSec, r.MBPerSec, r.P99Ms)
		}
	}
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
		P99Ms:         ms(99),
		P999Ms:        ms(99.9),
		ElapsedSec:    el,
	}
}

func (b *benchRun) print(w io.Writer, what string) error {
	r := b.report()
	if b.e.output == "json" {
		return printJSON(w, r)
	}
	_, err := fmt.Fprintf(w, "%s %s in %.2fs: %.0f records/s, %.2f MB/s\n%s latency: p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms\n",
		what, plural(r.Records, "record"), r.ElapsedSec, r.RecordsPerSec, r.MBPerSec, what, r.P50Ms, r.P99Ms, r.P999Ms)
	return err
}

type benchProduceFlags struct {
	topic       string
	records     int64
	recordSize  int
	producers   int
	batchBytes  int
	linger      time.Duration
	compression string
	acks        string
	partitions  int32
	duration    time.Duration
	keys        int
}

func newBenchProduceCmd(e *env) *cobra.Command {
	var f benchProduceFlags
	cmd := &cobra.Command{
		Use:   "produce",
		Short: "Produce --records records and report throughput and latency",
		Long: `Produce --records records of --record-size random bytes with --producers
concurrent producers sharing one client, then report records/s, MB/s and
the latency of each record from Produce to its acknowledgement (p50, p99,
p99.9).

The topic is created if it does not exist, with --partitions partitions
(default 1) and the broker's default replication factor. --batch-bytes,
--linger, --compression and --acks are the producer settings under test.
The run stops at --records or after --duration, whichever comes first.`,
		Example: `  strata bench produce --topic bench --records 1000000 --record-size 100
  strata bench produce --topic bench6 --partitions 6 --producers 6 --compression lz4 --acks leader -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return e.benchProduce(cmd.Context(), &f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.topic, "topic", "", "topic to write, created if missing (required)")
	fl.Int64Var(&f.records, "records", 100000, "records to produce")
	fl.IntVar(&f.recordSize, "record-size", 100, "bytes per record value")
	fl.IntVar(&f.producers, "producers", 1, "concurrent producers")
	fl.IntVar(&f.batchBytes, "batch-bytes", 1<<20, "producer batch size cap in bytes")
	fl.DurationVar(&f.linger, "linger", 5*time.Millisecond, "producer linger")
	fl.StringVar(&f.compression, "compression", "none", "none, gzip, snappy, lz4 or zstd")
	fl.StringVar(&f.acks, "acks", "quorum", "quorum (all), leader or none")
	fl.Int32Var(&f.partitions, "partitions", 1, "partitions, when the topic is created")
	fl.IntVar(&f.keys, "keys", 0, "give records keys key-0 .. key-<N-1> in turn (0 = no key); needed for compacted topics")
	fl.DurationVar(&f.duration, "duration", 10*time.Minute, "stop after this long even if --records are not done")
	return cmd
}

func (e *env) benchProduce(ctx context.Context, f *benchProduceFlags) error {
	if f.topic == "" {
		return usageErrorf("bench produce needs --topic NAME: the topic to write, which is created if missing")
	}
	if f.records < 1 || f.recordSize < 0 || f.producers < 1 || f.duration <= 0 || f.keys < 0 {
		return usageErrorf("--records, --producers and --duration must be positive, --record-size and --keys not negative")
	}
	if f.batchBytes < 1 || f.linger < 0 || f.partitions < 1 {
		return usageErrorf("--batch-bytes and --partitions must be positive, --linger not negative")
	}
	var seq atomic.Int64
	key := func() []byte {
		if f.keys == 0 {
			return nil
		}
		return fmt.Appendf(nil, "key-%d", seq.Add(1)%int64(f.keys))
	}
	codec, acks, err := parseCodecAcks(f.compression, f.acks)
	if err != nil {
		return err
	}
	c, err := e.newClient()
	if err != nil {
		return err
	}
	defer c.Close()
	if err := e.ensureTopic(ctx, c, f.topic, f.partitions); err != nil {
		return onTopic(f.topic, err)
	}

	runCtx, cancel := context.WithTimeout(ctx, f.duration)
	defer cancel()
	run, stopProgress := e.startBench(ctx, f.records)

	value := make([]byte, f.recordSize)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	var (
		errMu    sync.Mutex
		firstErr error
	)
	setErr := func(err error) {
		errMu.Lock()
		defer errMu.Unlock()
		if firstErr == nil {
			firstErr = err
			cancel()
		}
	}
	var wg sync.WaitGroup
	for i := range f.producers {
		n := f.records / int64(f.producers)
		if int64(i) < f.records%int64(f.producers) {
			n++
		}
		p := c.NewProducer(client.Compression(codec), client.RequiredAcks(acks), client.BatchMaxBytes(f.batchBytes), client.Linger(f.linger),
			client.DeliveryTimeout(e.retryTimeout()))
		wg.Go(func() {
			for range n {
				if runCtx.Err() != nil {
					break
				}
				sent := time.Now()
				p.Produce(runCtx, &client.Record{Topic: f.topic, Key: key(), Value: value}, func(r *client.Record, err error) {
					if err != nil {
						if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
							setErr(err)
						}
						return
					}
					run.observe(1, int64(len(r.Value)), time.Since(sent))
				})
			}
			closeCtx, cancelClose := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancelClose()
			if err := p.Close(closeCtx); err != nil {
				setErr(err)
			}
		})
	}
	wg.Wait()
	stopProgress()
	if firstErr != nil {
		return onTopic(f.topic, firstErr)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return run.print(e.stdout, "produced")
}

// ensureTopic creates topic with partitions if it does not exist.
func (e *env) ensureTopic(ctx context.Context, c *client.Client, topic string, partitions int32) error {
	actx, cancel := e.adminCtx(ctx)
	defer cancel()
	_, err := c.Admin().DescribeTopic(actx, topic)
	if !errors.Is(err, apierr.ErrUnknownTopic) {
		return err
	}
	_, err = c.Admin().CreateTopic(actx, topic, partitions, 0, nil)
	if errors.Is(err, apierr.ErrTopicExists) {
		return nil
	}
	if err == nil {
		fmt.Fprintf(e.stderr, "created topic %q with %s\n", topic, plural(int64(partitions), "partition"))
	}
	return err
}
