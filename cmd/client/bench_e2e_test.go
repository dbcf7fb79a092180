package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stratalog/strata/internal/brokertest"
)

// bench consume reads exactly --records, and with fewer available warns
// and stops after --idle, reporting what it read.
func TestCLIBenchConsumeCounts(t *testing.T) {
	addr := brokertest.Start(t)
	r := runCLI(t, addr, "", "bench", "produce", "--topic", "bc", "--records", "3000", "--partitions", "2").ok(t)
	if !strings.HasPrefix(r.stdout, "produced 3000 records in ") || r.stderr != "created topic \"bc\" with 2 partitions\n" {
		t.Fatalf("bench produce: %q %q", r.stdout, r.stderr)
	}
	r = runCLI(t, addr, "", "bench", "consume", "--topic", "bc", "--records", "10", "-o", "json").ok(t)
	var bj benchJSON
	if err := json.Unmarshal([]byte(r.stdout), &bj); err != nil || bj.Records != 10 || r.stderr != "" {
		t.Errorf("--records 10: %q %q %v", r.stdout, r.stderr, err)
	}
	r = runCLI(t, addr, "", "bench", "consume", "--topic", "bc", "--records", "1").ok(t)
	if !strings.HasPrefix(r.stdout, "consumed 1 record in ") {
		t.Errorf("--records 1: %q", r.stdout)
	}
	// --progress=false: stderr is compared whole, and on a loaded machine
	// the run could pass the second after which a progress line is due.
	r = runCLI(t, addr, "", "bench", "consume", "--topic", "bc", "--records", "5000", "--idle", "300ms", "--progress=false", "-o", "json").ok(t)
	if err := json.Unmarshal([]byte(r.stdout), &bj); err != nil || bj.Records != 3000 || bj.RecordsPerSec <= 0 ||
		r.stderr != "strata: warning: no record for 300ms (--idle); the topic holds fewer records than asked from --offset start: consumed 3000 of 5000 records\n" {
		t.Errorf("fewer than --records: %q %q %v", r.stdout, r.stderr, err)
	}
	r = runCLI(t, addr, "", "bench", "consume", "--topic", "bc", "--records", "5", "--offset", "end", "--idle", "200ms").ok(t)
	if !strings.HasPrefix(r.stdout, "consumed 0 records in ") || !strings.Contains(r.stderr, "consumed 0 of 5 records") {
		t.Errorf("nothing to read: %q %q", r.stdout, r.stderr)
	}
	for _, c := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"bench", "consume", "--topic", "bc", "--idle", "0s"}, "strata: --idle 0s: want more than 0, e.g. 5s (see --help)\n"},
		{[]string{"bench", "consume", "--topic", "bc", "--records", "0"}, "strata: --records 0: want 1 or more (see --help)\n"},
		{[]string{"bench", "consume", "--topic", "bc", "--duration", "-1s"}, "strata: --duration -1s: want more than 0, e.g. 30s (see --help)\n"},
		{[]string{"consume", "bc", "--partition", "-1"}, "strata: --partition -1 is negative: partitions are numbered from 0 (see --help)\n"},
	} {
		r := runCLI(t, addr, "", c.args...)
		if r.code != 1 || r.stderr != c.stderr {
			t.Errorf("%q: exit %d, stderr %q, want %q", c.args, r.code, r.stderr, c.stderr)
		}
	}
}

// bench produce --sync sends one record at a time per producer: every
// record is stored once, and the report has all its percentiles, in
// order.
func TestCLIBenchProduceSync(t *testing.T) {
	addr := brokertest.Start(t)
	r := runCLI(t, addr, "", "bench", "produce", "--topic", "bs", "--sync", "--records", "301", "--producers", "3",
		"--partitions", "2", "--keys", "7", "-o", "json").ok(t)
	var bj benchJSON
	if err := json.Unmarshal([]byte(r.stdout), &bj); err != nil {
		t.Fatalf("bench produce --sync: %q: %v", r.stdout, err)
	}
	if bj.Records != 301 || bj.RecordsPerSec <= 0 || bj.MBPerSec <= 0 || bj.ElapsedSec <= 0 {
		t.Errorf("bench produce --sync counts: %+v", bj)
	}
	if bj.P50Ms <= 0 || bj.P50Ms > bj.P90Ms || bj.P90Ms > bj.P99Ms || bj.P99Ms > bj.P999Ms || bj.P999Ms > bj.MaxMs {
		t.Errorf("bench produce --sync percentiles out of order: %+v", bj)
	}
	for _, key := range []string{`"p50_ms"`, `"p90_ms"`, `"p99_ms"`, `"p999_ms"`, `"max_ms"`} {
		if !strings.Contains(r.stdout, key) {
			t.Errorf("bench produce --sync -o json has no %s: %s", key, r.stdout)
		}
	}
	r = runCLI(t, addr, "", "topic", "describe", "bs", "-o", "json").ok(t)
	var desc topicDescJSON
	if err := json.Unmarshal([]byte(r.stdout), &desc); err != nil {
		t.Fatal(err)
	}
	var stored int64
	for _, p := range desc.Partitions {
		stored += p.HighWatermark
	}
	if stored != 301 {
		t.Errorf("the topic holds %d records after bench produce --sync --records 301", stored)
	}

	r = runCLI(t, addr, "", "bench", "produce", "--topic", "bs", "--sync", "--linger", "0s")
	if want := "strata: --linger does not apply with --sync: each record is sent as soon as the one before it is acknowledged (see --help)\n"; r.code != 1 || r.stderr != want {
		t.Errorf("--sync --linger: exit %d, stderr %q, want %q", r.code, r.stderr, want)
	}
}

// When stdout is not a terminal (runCLI's is not), progress goes to
// stderr a line a second, JSON objects with -o json, and stdout holds
// the report alone. --duration bounds the run: --records cannot be done
// in 1.5 s, so at least the line of the first second is due.
func TestCLIBenchProgressLines(t *testing.T) {
	addr := brokertest.Start(t)
	r := runCLI(t, addr, "", "bench", "produce", "--topic", "bp", "--sync", "--records", "100000000", "--duration", "1500ms", "-o", "json").ok(t)
	var bj benchJSON
	if err := json.Unmarshal([]byte(r.stdout), &bj); err != nil || bj.Records <= 0 || bj.ElapsedSec < 1.5 {
		t.Errorf("report: %q %v", r.stdout, err)
	}
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	if len(lines) < 2 || lines[0] != `created topic "bp" with 1 partition` {
		t.Fatalf("want the topic's creation and progress lines on stderr, got %q", r.stderr)
	}
	var last int64
	for _, line := range lines[1:] {
		var p benchProgressJSON
		d := json.NewDecoder(strings.NewReader(line))
		d.DisallowUnknownFields()
		if err := d.Decode(&p); err != nil {
			t.Fatalf("progress line %q: %v", line, err)
		}
		if !p.Progress || p.Total != 100000000 || p.Records < last || p.Records > bj.Records || p.ElapsedSec < 1 ||
			p.RecordsPerSec < 0 || p.MBPerSec < 0 {
			t.Errorf("progress line %q", line)
		}
		last = p.Records
	}

	r = runCLI(t, addr, "", "bench", "consume", "--topic", "bp", "--records", "100000000", "--duration", "1500ms", "--progress=false").ok(t)
	if !strings.Contains(r.stdout, "consumed ") || strings.Contains(r.stderr, "progress") {
		t.Errorf("--progress=false: stdout %q, stderr %q", r.stdout, r.stderr)
	}
}
