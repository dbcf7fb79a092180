package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestTiny runs both systems, one node, for a tiny workload: every figure
// of both is positive and covers every record, the table and the JSON
// print them, and nothing is left behind (no child process, no data).
// It builds both servers (a minute or two the first time), so CI, which
// runs only the top module's tests, does not run it.
func TestTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs strata-broker and nats-server")
	}
	cfg := defaultConfig()
	cfg.shapes = []int{1}
	cfg.runs = 1
	cfg.records = 200
	cfg.syncRecords = 50
	cfg.maxTime = time.Minute
	cfg.dir = t.TempDir()
	cfg.progress = t.Logf
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	rep, err := run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}

	seen := map[string]bool{}
	for _, m := range rep.measurements {
		seen[m.System+"/"+m.Metric] = true
		if m.Value <= 0 {
			t.Errorf("%s %s: %v, want > 0", m.System, m.Metric, m.Value)
		}
		if m.cut() {
			t.Errorf("%s %s: %d of %d records within %s", m.System, m.Metric, m.Records, m.Wanted, cfg.maxTime)
		}
	}
	for _, sys := range []string{"Strata", "JetStream"} {
		for _, metric := range metricOrder {
			if !seen[sys+"/"+metric] {
				t.Errorf("no %s figure for %s", metric, sys)
			}
		}
	}

	table := rep.String()
	t.Log("\n" + table)
	for _, want := range []string{"Strata/JetStream", mPipelined, mSyncP50, mSyncP99, mConsume, "1 node"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q", want)
		}
	}
	var buf bytes.Buffer
	if err := rep.writeJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var decoded struct{ Rows []row }
	if err := json.Unmarshal(buf.Bytes(), &decoded); err != nil {
		t.Fatalf("-o json: %v\n%s", err, buf.Bytes())
	}
	if len(decoded.Rows) != len(metricOrder) {
		t.Errorf("-o json: %d rows, want %d", len(decoded.Rows), len(metricOrder))
	}
	for _, rw := range decoded.Rows {
		if rw.Ratio <= 0 {
			t.Errorf("-o json: %s: ratio %v, want > 0", rw.Metric, rw.Ratio)
		}
	}

	if left, _ := filepath.Glob(filepath.Join(cfg.dir, "*")); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
	if kids := children(t); len(kids) != 0 {
		t.Errorf("child processes still running: %v", kids)
	}
}

// children lists the processes whose parent is this one (Linux's /proc;
// none elsewhere).
func children(t *testing.T) []string {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	me := strconv.Itoa(os.Getpid())
	var out []string
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		if f := strings.Fields(s[i+1:]); len(f) > 1 && f[1] == me {
			out = append(out, s[:i+1])
		}
	}
	return out
}
