package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/stratalog/strata/pkg/client"
	"github.com/stratalog/strata/pkg/record"
)

type benchConsumeFlags struct {
	topic    string
	records  int64
	offset   string
	duration time.Duration
	idle     time.Duration
	progress *bool // bench's --progress
}

func newBenchConsumeCmd(e *env, progress *bool) *cobra.Command {
	f := benchConsumeFlags{progress: progress}
	cmd := &cobra.Command{
		Use:   "consume",
		Short: "Consume --records records and report throughput and latency",
		Long: `Read exactly --records records of --topic from every partition, starting
at --offset (default start), and report records/s and MB/s. Latency here
is per fetch: the time of each poll that returned records, weighted by the
records it returned. Fill the topic first, for example with "strata bench
produce".

The run stops at --records, after --duration, or when no record has
arrived for --idle (default 5s: the topic holds fewer records than asked,
or the brokers cannot be reached; the warning says which).
Stopping early is a warning on stderr, not an error: the report covers the
records read ("consumed 7 records"), and its time ends at the last one.`,
		Example: `  strata bench consume --topic bench --records 1000000
  strata bench consume --topic bench --records 100000 --offset -100000 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return e.benchConsume(cmd.Context(), &f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.topic, "topic", "", "topic to read (required)")
	fl.Int64Var(&f.records, "records", 100000, "records to consume")
	fl.StringVar(&f.offset, "offset", "start", "where to start: start, end, N, -N, @time")
	fl.DurationVar(&f.duration, "duration", 10*time.Minute, "stop after this long even if --records are not done")
	fl.DurationVar(&f.idle, "idle", 5*time.Second, "stop when no record arrives for this long")
	return cmd
}

func (e *env) benchConsume(ctx context.Context, f *benchConsumeFlags) error {
	switch {
	case f.topic == "":
		return usageErrorf("bench consume needs --topic NAME: the topic to read, filled first with strata bench produce --topic NAME")
	case f.records < 1:
		return usageErrorf("--records %d: want 1 or more", f.records)
	case f.duration <= 0:
		return usageErrorf("--duration %s: want more than 0, e.g. 30s", f.duration)
	case f.idle <= 0:
		return usageErrorf("--idle %s: want more than 0, e.g. 5s", f.idle)
	}
	start, err := client.ParseOffset(f.offset)
	if err != nil {
		return usageErrorf("--offset: %v", err)
	}
	c, err := e.newClient()
	if err != nil {
		return err
	}
	defer c.Close()
	// A missing topic is an error now, not --idle of silence and "0
	// records" later.
	actx, cancelAdmin := e.adminCtx(ctx)
	_, err = c.Admin().DescribeTopic(actx, f.topic)
	cancelAdmin()
	if err != nil {
		return onTopic(f.topic, err)
	}
	cs, err := c.NewConsumer(f.topic, client.StartAt(start))
	if err != nil {
		return err
	}
	defer cs.Close()

	runCtx, cancel := context.WithTimeout(ctx, f.duration)
	defer cancel()
	run, stopProgress := e.startBench(ctx, f.records, *f.progress)
	defer stopProgress()

	var got int64
	last := time.Now() // the last record, or the start
	stopped := ""
	for got < f.records {
		t0 := time.Now()
		pollCtx, cancelPoll := context.WithDeadline(runCtx, last.Add(f.idle))
		recs, err := cs.Poll(pollCtx)
		cancelPoll()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil && runCtx.Err() != nil:
			stopped = fmt.Sprintf("stopped by --duration %s", f.duration)
		case err != nil && pollCtx.Err() != nil && (errors.As(err, new(*client.UnreachableError)) || errors.As(err, new(*client.AdvertisedUnreachableError))):
			// Silence because the brokers are gone is not a short topic.
			// (Only an address that failed counts: a fetch cut by the
			// --idle deadline itself may read as UNAVAILABLE too.)
			stopped = fmt.Sprintf("no record for %s (--idle), and the brokers cannot be reached: %s", f.idle, advise(err, e))
		case err != nil && pollCtx.Err() != nil, err == nil && len(recs) == 0 && time.Since(last) >= f.idle:
			stopped = fmt.Sprintf("no record for %s (--idle); the topic holds fewer records than asked from --offset %s", f.idle, f.offset)
		case err != nil:
			return onTopic(f.topic, err)
		}
		if stopped != "" {
			break
		}
		if len(recs) == 0 {
			continue
		}
		// Exactly --records: the last poll may return more.
		recs = recs[:min(int64(len(recs)), f.records-got)]
		var bytes int64
		for _, r := range recs {
			bytes += int64(len(r.Key) + len(r.Value))
		}
		got += int64(len(recs))
		last = time.Now()
		run.observe(int64(len(recs)), bytes, last.Sub(t0))
	}
	stopProgress()
	if got < f.records {
		run.finish(last)
		fmt.Fprintf(e.stderr, "strata: warning: %s: consumed %d of %s\n", stopped, got, plural(f.records, "record"))
	}
	return run.print(e.stdout, "consumed")
}

// parseCodecAcks reads the --compression and --acks flags.
func parseCodecAcks(compression, acks string) (record.Compression, client.Acks, error) {
	codec, ok := record.ParseCompression(compression)
	if !ok {
		return 0, 0, usageErrorf("--compression %q: want none, gzip, snappy, lz4 or zstd", compression)
	}
	a, err := client.ParseAcks(acks)
	if err != nil {
		return 0, 0, usageErrorf("--acks %q: want quorum, leader or none", acks)
	}
	return codec, a, nil
}
