// Command compare runs the same three workloads against Strata and NATS
// JetStream on this machine, side by side, and prints a table of the
// results: the median and the range of each figure over the runs, per
// system, and the ratio of the medians.
//
// Both systems run as child processes on loopback, built from source
// into a temporary directory: strata-broker from this repository
// (../../cmd/broker, with the repository's own go.mod) and nats-server
// at the version pinned in this module's go.mod. Each run starts a fresh
// cluster with fresh data directories and stops it by PID afterwards;
// the temporary directory is removed at the end, on Ctrl-C too.
//
// Shapes (-shapes): 1 node; 3 nodes with every record on all three (a
// Strata topic with one partition and replication 3, a JetStream R3
// stream). Durability is equal: Strata fsyncs before it acknowledges
// (--fsync always, its default), JetStream is started with
// sync_interval: always.
//
// Workloads, with -size byte records:
//
//  1. pipelined produce: -records records through Strata's Producer with
//     its default batching, and through JetStream's PublishAsync with at
//     most -js-max-pending unacknowledged (by default 10000, the Strata
//     Producer's default MaxBufferedRecords); MB/s of record values.
//  2. one-at-a-time produce: -sync-records records, each waiting for its
//     acknowledgement before the next is sent; p50 and p99 latency.
//  3. consume a warm log: -records records are written first, then read
//     from the start (a plain Strata Consumer from Earliest, a JetStream
//     ordered consumer); MB/s, timed from the consumer's creation.
//
// Every workload stops at its count or after -max-time, whichever comes
// first; a figure from a run cut short by time covers what was
// acknowledged (or read) in that time and is marked in the table.
//
// The runs interleave: in each round both systems run, Strata first in
// even rounds and JetStream first in odd ones, so that a machine that
// slows down over time does not favour one of them.
//
// Run it from this directory (make bench-compare at the top does):
//
//	go run . -runs 3 -records 20000
//	go run . -shapes 1 -o json
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config is what the flags set; the test builds its own.
type config struct {
	shapes       []int         // cluster sizes; replication equals the size
	runs         int           // rounds per shape, each running both systems
	size         int           // bytes of each record's value
	records      int           // pipelined produce, and the warm log's length
	syncRecords  int           // one-at-a-time produce
	maxTime      time.Duration // bound of each workload
	jsMaxPending int           // JetStream PublishAsyncMaxPending
	dir          string        // parent of the temporary directory
	repo         string        // the Strata repository (cmd/broker is built from it)
	progress     func(format string, args ...any)
}

func defaultConfig() config {
	return config{
		shapes:       []int{1, 3},
		runs:         3,
		size:         1024,
		records:      20000,
		syncRecords:  1000,
		maxTime:      30 * time.Second,
		jsMaxPending: 10000,
		repo:         "../..",
		progress:     func(string, ...any) {},
	}
}

func main() {
	cfg := defaultConfig()
	shapes := "1,3"
	output := "table"
	quiet := false
	flag.StringVar(&shapes, "shapes", shapes, "cluster sizes to run, comma-separated: 1 (one node) and 3 (three nodes, replication 3)")
	flag.IntVar(&cfg.runs, "runs", cfg.runs, "rounds per shape; each round runs both systems, the order swapped every round")
	flag.IntVar(&cfg.size, "size", cfg.size, "bytes of each record's value (random, incompressible)")
	flag.IntVar(&cfg.records, "records", cfg.records, "records of the pipelined produce, and of the warm log the consume workload reads")
	flag.IntVar(&cfg.syncRecords, "sync-records", cfg.syncRecords, "records of the one-at-a-time produce")
	flag.DurationVar(&cfg.maxTime, "max-time", cfg.maxTime, "longest any one workload runs; one cut short reports what it did in that time")
	flag.IntVar(&cfg.jsMaxPending, "js-max-pending", cfg.jsMaxPending, "JetStream async publishes unacknowledged at once (PublishAsyncMaxPending); the default is the Strata Producer's default MaxBufferedRecords")
	flag.StringVar(&cfg.dir, "dir", cfg.dir, "where to make the temporary directory for binaries, data and logs (default: the system's temporary directory)")
	flag.StringVar(&cfg.repo, "repo", cfg.repo, "the Strata repository, whose cmd/broker is built")
	flag.StringVar(&output, "o", output, "table or json")
	flag.BoolVar(&quiet, "q", quiet, "do not print progress to stderr")
	flag.Parse()

	if err := cfg.parseShapes(shapes); err != nil {
		fail(err)
	}
	if output != "table" && output != "json" {
		fail(fmt.Errorf("-o %q: use table or json", output))
	}
	if err := cfg.validate(); err != nil {
		fail(err)
	}
	if !quiet {
		cfg.progress = func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
		}
	}

	// The children are in their own process group (proc_linux.go), so
	// Ctrl-C reaches only this process: it cancels ctx, the workload in
	// progress returns, and the deferred stops end every child by PID. A
	// second Ctrl-C kills this process outright; the children then get
	// SIGTERM from the kernel (their parent-death signal).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() { <-ctx.Done(); stop() }()

	rep, err := run(ctx, cfg)
	if err != nil {
		fail(err)
	}
	if output == "json" {
		err = rep.writeJSON(os.Stdout)
	} else {
		err = rep.writeTable(os.Stdout)
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "compare:", err)
	os.Exit(1)
}

func (c *config) parseShapes(s string) error {
	c.shapes = nil
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || (n != 1 && n != 3) {
			return fmt.Errorf("-shapes %q: each shape is 1 or 3", s)
		}
		c.shapes = append(c.shapes, n)
	}
	return nil
}

func (c config) validate() error {
	switch {
	case len(c.shapes) == 0:
		return fmt.Errorf("-shapes: name at least one of 1, 3")
	case c.runs < 1:
		return fmt.Errorf("-runs %d: run at least once", c.runs)
	case c.size < 1 || c.size > 512<<10:
		return fmt.Errorf("-size %d: between 1 and 524288 bytes (JetStream's default max_payload is 1 MiB)", c.size)
	case c.records < 1, c.syncRecords < 1:
		return fmt.Errorf("-records and -sync-records must be at least 1")
	case c.maxTime <= 0:
		return fmt.Errorf("-max-time %s: must be positive", c.maxTime)
	case c.jsMaxPending < 1:
		return fmt.Errorf("-js-max-pending %d: must be at least 1", c.jsMaxPending)
	}
	return nil
}
