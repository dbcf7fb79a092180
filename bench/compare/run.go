package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// system starts clusters of one of the two products.
type system interface {
	name() string
	// start runs a fresh n-node cluster with its data, config and logs
	// under dir, and returns once every node serves and the cluster has
	// a leader. On error it has stopped whatever it started.
	start(ctx context.Context, bins binaries, n int, dir string) (cluster, error)
}

// cluster is one running cluster of a system and a client connected to
// it. Its methods are called from one goroutine.
//
// The workload methods return what they did before ctx ended, with the
// error that ended them; the runner takes an error after ctx's deadline
// as the run being cut short by -max-time, not as a failure.
type cluster interface {
	// createLog makes a log (a Strata topic with one partition, a
	// JetStream stream) replicated on every node, and waits until all
	// replicas are in sync.
	createLog(ctx context.Context, log string) error
	// pipelined sends up to n records of payload with the client's own
	// batching and pipelining, and returns how many were acknowledged.
	pipelined(ctx context.Context, log string, payload []byte, n int) (int, error)
	// oneByOne sends up to n records, each after the previous one's
	// acknowledgement, passing each one's latency to observe.
	oneByOne(ctx context.Context, log string, payload []byte, n int, observe func(time.Duration)) (int, error)
	// readAll reads the log from its start until n records have come,
	// and returns how many did.
	readAll(ctx context.Context, log string, n int) (int, error)
	// close closes the client and stops every process of the cluster.
	close()
}

// Metric names, in the order of the table.
const (
	mPipelined = "pipelined produce (MB/s)"
	mSyncP50   = "one-at-a-time produce p50 (ms)"
	mSyncP99   = "one-at-a-time produce p99 (ms)"
	mConsume   = "consume warm log (MB/s)"
)

var metricOrder = []string{mPipelined, mSyncP50, mSyncP99, mConsume}

// higherIsBetter says how to read a metric's ratio.
var higherIsBetter = map[string]bool{mPipelined: true, mConsume: true}

// measurement is one figure of one run.
type measurement struct {
	System  string  `json:"system"`
	Nodes   int     `json:"nodes"`
	Round   int     `json:"round"`
	Metric  string  `json:"metric"`
	Value   float64 `json:"value"`
	Records int     `json:"records"` // records the figure covers
	Wanted  int     `json:"wanted"`  // records asked for: more than Records when cut by -max-time
	Seconds float64 `json:"seconds"`
}

func (m measurement) cut() bool { return m.Records < m.Wanted }

// run builds both servers, runs every shape and round, and returns the
// measurements. Everything it makes lives in one temporary directory,
// removed when it returns.
func run(ctx context.Context, cfg config) (*report, error) {
	work, err := os.MkdirTemp(cfg.dir, "strata-bench-compare-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)

	cfg.progress("building strata-broker and nats-server into %s", work)
	bins, err := build(ctx, cfg.repo, filepath.Join(work, "bin"))
	if err != nil {
		return nil, err
	}
	rep := &report{cfg: cfg}
	systems := []system{strataSystem{}, jetstreamSystem{maxPending: cfg.jsMaxPending}}
	for _, n := range cfg.shapes {
		for round := range cfg.runs {
			order := systems
			if round%2 == 1 {
				order = []system{systems[1], systems[0]}
			}
			for _, sys := range order {
				dir := filepath.Join(work, fmt.Sprintf("%s-%dn-r%d", sys.name(), n, round))
				cfg.progress("%s, %d node(s), round %d of %d", sys.name(), n, round+1, cfg.runs)
				ms, err := runOnce(ctx, cfg, bins, sys, n, dir)
				// The next run starts on fresh data; keep the disk small.
				os.RemoveAll(dir)
				if err != nil {
					return nil, fmt.Errorf("%s, %d node(s), round %d: %w", sys.name(), n, round+1, err)
				}
				for i := range ms {
					ms[i].System, ms[i].Nodes, ms[i].Round = sys.name(), n, round
					cfg.progress("  %-32s %10.2f  (%d of %d records in %.2fs)", ms[i].Metric, ms[i].Value, ms[i].Records, ms[i].Wanted, ms[i].Seconds)
				}
				rep.measurements = append(rep.measurements, ms...)
			}
		}
	}
	return rep, nil
}

// runOnce starts a cluster, runs the three workloads on it, and stops it.
func runOnce(ctx context.Context, cfg config, bins binaries, sys system, n int, dir string) ([]measurement, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cl, err := sys.start(ctx, bins, n, dir)
	if err != nil {
		return nil, err
	}
	defer cl.close()

	payload := make([]byte, cfg.size)
	rand.Read(payload)
	mb := func(records int, d time.Duration) float64 {
		return float64(records) * float64(cfg.size) / 1e6 / d.Seconds()
	}
	var out []measurement

	// 1. Pipelined produce. One record first, untimed: it opens the
	// connections and loads metadata, which the figure should not carry.
	if err := prepare(ctx, cl, "pipelined", payload); err != nil {
		return nil, err
	}
	got, took, err := timed(ctx, cfg.maxTime, func(ctx context.Context) (int, error) {
		return cl.pipelined(ctx, "pipelined", payload, cfg.records)
	})
	if err != nil {
		return nil, fmt.Errorf("pipelined produce: %w", err)
	}
	out = append(out, measurement{Metric: mPipelined, Value: mb(got, took), Records: got, Wanted: cfg.records, Seconds: took.Seconds()})

	// 2. One at a time.
	if err := prepare(ctx, cl, "sync", payload); err != nil {
		return nil, err
	}
	h := hdrhistogram.New(1, int64(time.Minute/time.Microsecond), 3)
	got, took, err = timed(ctx, cfg.maxTime, func(ctx context.Context) (int, error) {
		return cl.oneByOne(ctx, "sync", payload, cfg.syncRecords, func(d time.Duration) {
			h.RecordValue(max(1, d.Microseconds()))
		})
	})
	if err != nil {
		return nil, fmt.Errorf("one-at-a-time produce: %w", err)
	}
	if got == 0 {
		return nil, fmt.Errorf("one-at-a-time produce: no record acknowledged within -max-time %s", cfg.maxTime)
	}
	for _, q := range []struct {
		metric string
		pct    float64
	}{{mSyncP50, 50}, {mSyncP99, 99}} {
		out = append(out, measurement{Metric: q.metric, Value: float64(h.ValueAtQuantile(q.pct)) / 1000, Records: got, Wanted: cfg.syncRecords, Seconds: took.Seconds()})
	}

	// 3. Consume a warm log: write it (untimed), then read it all.
	if err := prepare(ctx, cl, "warm", payload); err != nil {
		return nil, err
	}
	written, _, err := timed(ctx, cfg.maxTime, func(ctx context.Context) (int, error) {
		return cl.pipelined(ctx, "warm", payload, cfg.records)
	})
	if err != nil {
		return nil, fmt.Errorf("consume: writing the log: %w", err)
	}
	written++ // prepare's record
	got, took, err = timed(ctx, cfg.maxTime, func(ctx context.Context) (int, error) {
		return cl.readAll(ctx, "warm", written)
	})
	if err != nil {
		return nil, fmt.Errorf("consume: %w", err)
	}
	out = append(out, measurement{Metric: mConsume, Value: mb(got, took), Records: got, Wanted: written, Seconds: took.Seconds()})
	return out, nil
}

// prepare creates a log and writes one record to it, so that the timed
// workload starts with the client's connections open and metadata known.
func prepare(ctx context.Context, cl cluster, log string, payload []byte) error {
	if err := cl.createLog(ctx, log); err != nil {
		return fmt.Errorf("create %s: %w", log, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	n, err := cl.oneByOne(ctx, log, payload, 1, func(time.Duration) {})
	if n != 1 {
		return fmt.Errorf("first record to %s not acknowledged: %v", log, errors.Join(err, ctx.Err()))
	}
	return nil
}

// timed runs fn with a deadline of maxTime and returns what it did and
// how long it took. An error that came because the deadline passed is
// not one: the workload was cut short, and the count says how far it got.
func timed(ctx context.Context, maxTime time.Duration, fn func(context.Context) (int, error)) (int, time.Duration, error) {
	wctx, cancel := context.WithTimeout(ctx, maxTime)
	defer cancel()
	start := time.Now()
	n, err := fn(wctx)
	took := time.Since(start)
	if ctx.Err() != nil {
		return n, took, ctx.Err() // interrupted
	}
	if err != nil && !errors.Is(wctx.Err(), context.DeadlineExceeded) {
		return n, took, err
	}
	return n, took, nil
}
