package main

import (
	"errors"
	"testing"
	"time"
)

// Each out-of-range flag of bench produce is named alone, with its range.
func TestBenchProduceFlagErrors(t *testing.T) {
	ok := func() benchProduceFlags {
		return benchProduceFlags{topic: "t", records: 1, recordSize: 0, producers: 1, batchBytes: 1, partitions: 1, duration: time.Second}
	}
	none := func(string) bool { return false }
	for _, c := range []struct {
		name    string
		edit    func(*benchProduceFlags)
		changed func(string) bool
		want    string
	}{
		{"valid", func(*benchProduceFlags) {}, none, ""},
		{"sync alone", func(f *benchProduceFlags) { f.sync = true }, none, ""},
		{"no topic", func(f *benchProduceFlags) { f.topic = "" }, none, "bench produce needs --topic NAME: the topic to write, which is created if missing"},
		{"records", func(f *benchProduceFlags) { f.records = 0 }, none, "--records 0: want 1 or more"},
		{"record-size", func(f *benchProduceFlags) { f.recordSize = -1 }, none, "--record-size -1: want 0 or more"},
		{"producers", func(f *benchProduceFlags) { f.producers = 0 }, none, "--producers 0: want 1 or more"},
		{"batch-bytes", func(f *benchProduceFlags) { f.batchBytes = 0 }, none, "--batch-bytes 0: want 1 or more"},
		{"linger", func(f *benchProduceFlags) { f.linger = -time.Second }, none, "--linger -1s: want 0 (send as soon as the partition is idle) or more"},
		{"partitions", func(f *benchProduceFlags) { f.partitions = -2 }, none, "--partitions -2: want 1 or more"},
		{"keys", func(f *benchProduceFlags) { f.keys = -1 }, none, "--keys -1: want 0 (no keys) or more"},
		{"duration", func(f *benchProduceFlags) { f.duration = 0 }, none, "--duration 0s: want more than 0, e.g. 30s"},
		{"first of two", func(f *benchProduceFlags) { f.records, f.duration = 0, 0 }, none, "--records 0: want 1 or more"},
		{"sync batch-bytes", func(f *benchProduceFlags) { f.sync = true }, func(s string) bool { return s == "batch-bytes" },
			"--batch-bytes does not apply with --sync: each record is sent alone"},
		{"sync linger", func(f *benchProduceFlags) { f.sync = true }, func(s string) bool { return s == "linger" },
			"--linger does not apply with --sync: each record is sent as soon as the one before it is acknowledged"},
		{"linger without sync", func(*benchProduceFlags) {}, func(s string) bool { return s == "linger" }, ""},
	} {
		f := ok()
		c.edit(&f)
		err := f.validate(c.changed)
		var u *usageError
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !errors.As(err, &u) || u.Error() != c.want):
			t.Errorf("%s: got %v, want usage error %q", c.name, err, c.want)
		}
	}
}

// A progress line gives the records so far, the rates of the interval
// (not of the run) and the time since the start.
func TestProgressLine(t *testing.T) {
	start := time.Date(2026, 12, 7, 20, 0, 0, 0, time.UTC)
	prev := benchCount{at: start.Add(time.Second), records: 1000, bytes: 100_000}
	cur := benchCount{at: start.Add(3 * time.Second), records: 5000, bytes: 2_100_000}
	for _, c := range []struct {
		json      bool
		prev, cur benchCount
		want      string
	}{
		{false, prev, cur, "progress: 5000/9000 records, 2000 records/s, 1.00 MB/s (last second), 3.0s elapsed\n"},
		{true, prev, cur, `{"progress":true,"records":5000,"total":9000,"records_per_sec":2000,"mb_per_sec":1,"elapsed_sec":3}` + "\n"},
		// A stall: no record in the interval shows as 0/s.
		{false, cur, benchCount{at: start.Add(4 * time.Second), records: 5000, bytes: 2_100_000},
			"progress: 5000/9000 records, 0 records/s, 0.00 MB/s (last second), 4.0s elapsed\n"},
		// An empty interval has no rate, not NaN.
		{true, cur, cur, `{"progress":true,"records":5000,"total":9000,"records_per_sec":0,"mb_per_sec":0,"elapsed_sec":3}` + "\n"},
	} {
		if got := progressLine(c.json, start, 9000, c.prev, c.cur); got != c.want {
			t.Errorf("got  %q\nwant %q", got, c.want)
		}
	}
}
