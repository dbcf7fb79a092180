package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/client"
)

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
	sync        bool
	idempotent  bool
	progress    *bool // bench's --progress
}

func newBenchProduceCmd(e *env, progress *bool) *cobra.Command {
	f := benchProduceFlags{progress: progress}
	cmd := &cobra.Command{
		Use:   "produce",
		Short: "Produce --records records and report throughput and latency",
		Long: `Produce --records records of --record-size random bytes with --producers
concurrent producers sharing one client, then report records/s, MB/s and
the latency of each record from Produce to its acknowledgement (p50, p90,
p99, p99.9, max).

By default each producer keeps its buffer full and the records go in
batches (--batch-bytes, --linger), one batch in flight per partition: this
measures throughput, and a record's latency includes its wait in the batch
and behind the batch in flight.

With --sync each producer sends one record and waits for its
acknowledgement before the next: every batch holds one record and nothing
queues, so the latency is the service time of one produce (the client,
the network, the leader's write, replication and fsync as --acks and the
topic ask), and records/s is what --producers clients that each wait for
every write get. Use it to compare with one-at-a-time numbers elsewhere,
such as nats bench's synchronous JetStream publish or a Kafka producer with
linger.ms=0 that waits on each send; --batch-bytes and --linger do not
apply.

The topic is created if it does not exist, with --partitions partitions
(default 1) and the broker's default replication factor. --batch-bytes,
--linger, --compression, --acks and --idempotent are the producer settings
under test; --idempotent=false measures what the idempotent producer (the
default: each record stored once, even when retried) costs.
The run stops at --records or after --duration, whichever comes first.`,
		Example: `  strata bench produce --topic bench --records 1000000 --record-size 100
  strata bench produce --topic bench --records 10000 --sync --producers 4
  strata bench produce --topic bench6 --partitions 6 --producers 6 --compression lz4 --acks leader -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.validate(cmd.Flags().Changed); err != nil {
				return err
			}
			return e.benchProduce(cmd.Context(), &f)
		},
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
	fl.BoolVar(&f.idempotent, "idempotent", true, "idempotent producer: a retried batch is stored once (false: at least once)")
	fl.BoolVar(&f.sync, "sync", false, "each producer sends one record and waits for its acknowledgement before the next: latency is service time, not queueing")
	return cmd
}

// validate checks the flags one at a time, in the order of --help, and
// names the first one out of range with its range. changed says whether
// the user set a flag.
func (f *benchProduceFlags) validate(changed func(flag string) bool) error {
	if f.topic == "" {
		return usageErrorf("bench produce needs --topic NAME: the topic to write, which is created if missing")
	}
	for _, c := range []struct {
		bad bool
		msg string
	}{
		{f.records < 1, fmt.Sprintf("--records %d: want 1 or more", f.records)},
		{f.recordSize < 0, fmt.Sprintf("--record-size %d: want 0 or more", f.recordSize)},
		{f.producers < 1, fmt.Sprintf("--producers %d: want 1 or more", f.producers)},
		{f.batchBytes < 1, fmt.Sprintf("--batch-bytes %d: want 1 or more", f.batchBytes)},
		{f.linger < 0, fmt.Sprintf("--linger %s: want 0 (send as soon as the partition is idle) or more", f.linger)},
		{f.partitions < 1, fmt.Sprintf("--partitions %d: want 1 or more", f.partitions)},
		{f.keys < 0, fmt.Sprintf("--keys %d: want 0 (no keys) or more", f.keys)},
		{f.duration <= 0, fmt.Sprintf("--duration %s: want more than 0, e.g. 30s", f.duration)},
		{f.sync && changed("batch-bytes"), "--batch-bytes does not apply with --sync: each record is sent alone"},
		{f.sync && changed("linger"), "--linger does not apply with --sync: each record is sent as soon as the one before it is acknowledged"},
	} {
		if c.bad {
			return usageErrorf("%s", c.msg)
		}
	}
	return nil
}

func (e *env) benchProduce(ctx context.Context, f *benchProduceFlags) error {
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
	run, stopProgress := e.startBench(ctx, f.records, *f.progress)

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
	// fail reports a record's failure, unless the run had ended: a
	// record not yet sent then fails with the run's context error. While
	// the run goes on, a context error is a failure to report (a
	// delivery timeout may wrap context.DeadlineExceeded), not the end.
	fail := func(err error) {
		if runCtx.Err() != nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) {
			return
		}
		setErr(err)
	}
	var wg sync.WaitGroup
	for i := range f.producers {
		n := f.records / int64(f.producers)
		if int64(i) < f.records%int64(f.producers) {
			n++
		}
		opts := []client.ProducerOpt{client.Compression(codec), client.RequiredAcks(acks), client.DeliveryTimeout(e.retryTimeout()), client.Idempotent(f.idempotent)}
		if !f.sync {
			opts = append(opts, client.BatchMaxBytes(f.batchBytes), client.Linger(f.linger))
		}
		p := c.NewProducer(opts...)
		wg.Go(func() {
			for range n {
				if runCtx.Err() != nil {
					break
				}
				r := &client.Record{Topic: f.topic, Key: key(), Value: value}
				if f.sync {
					// ProduceSync sends at once, whatever the linger, and
					// this loop's producer holds nothing else: the batch is
					// this one record, and the time is its service time.
					sent := time.Now()
					if err := p.ProduceSync(runCtx, r).FirstErr(); err != nil {
						fail(err)
						break
					}
					run.observe(1, int64(len(r.Key)+len(r.Value)), time.Since(sent))
					continue
				}
				sent := time.Now()
				p.Produce(runCtx, r, func(r *client.Record, err error) {
					if err != nil {
						fail(err)
						return
					}
					run.observe(1, int64(len(r.Key)+len(r.Value)), time.Since(sent))
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
