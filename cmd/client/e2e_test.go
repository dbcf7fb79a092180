package main

// End-to-end: the cobra root command run in-process, with captured stdin
// and stdout, against a real in-process broker.

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stratalog/strata/internal/brokertest"
)

type result struct {
	stdout, stderr string
	code           int
}

func runCLI(t *testing.T, addr, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{
		stdin:      strings.NewReader(stdin),
		stdout:     &out,
		stderr:     &errb,
		getenv:     func(k string) string { return map[string]string{"STRATA_BROKERS": addr}[k] },
		isTerminal: func() bool { return false },
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := run(ctx, e, args)
	return result{out.String(), errb.String(), code}
}

func (r result) ok(t *testing.T) result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d, stderr: %s", r.code, r.stderr)
	}
	return r
}

func TestCLIEndToEnd(t *testing.T) {
	addr := brokertest.Start(t)

	r := runCLI(t, addr, "", "topic", "create", "ev", "-p", "2", "-c", "retention.ms=3600000").ok(t)
	if !strings.Contains(r.stdout, `created topic "ev" with 2 partitions`) {
		t.Errorf("create: %q", r.stdout)
	}
	r = runCLI(t, addr, "", "topic", "create", "ev")
	if r.code == 0 || r.stderr != "strata: topic \"ev\" already exists (see it with: strata topic describe ev)\n" {
		t.Errorf("create twice: %d %q", r.code, r.stderr)
	}

	r = runCLI(t, addr, "k1:one\nk2:two\r\nk1:three\nnokey\n", "produce", "ev", "--key-separator", ":", "--header", "src=test", "-v").ok(t)
	if r.stderr != "produced 4 records to ev\n" || strings.Count(r.stdout, "\n") != 4 {
		t.Errorf("produce: stdout %q stderr %q", r.stdout, r.stderr)
	}
	runCLI(t, addr, "pinned\n", "produce", "ev", "--partition", "1").ok(t)

	r = runCLI(t, addr, "", "consume", "ev", "-n", "5", "--format", `%p %k=%v %h\n`).ok(t)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 5 {
		t.Fatalf("consume: %q", r.stdout)
	}
	// Same key, same partition, in order.
	var k1 []string
	for _, l := range lines {
		if strings.Contains(l, "k1=") {
			k1 = append(k1, l)
		}
	}
	if len(k1) != 2 || k1[0][:2] != k1[1][:2] || !strings.HasSuffix(k1[0], "k1=one src=test") || !strings.HasSuffix(k1[1], "k1=three src=test") {
		t.Errorf("k1 records: %q", k1)
	}

	r = runCLI(t, addr, "", "consume", "ev", "--partition", "1", "--offset", "-1", "--timeout", "300ms", "-o", "json").ok(t)
	var rec map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &rec); err != nil {
		t.Fatalf("consume json %q: %v", r.stdout, err)
	}
	if rec["value"] != "pinned" || rec["partition"] != float64(1) || rec["key"] != nil {
		t.Errorf("consume json: %v", rec)
	}

	r = runCLI(t, addr, "", "topic", "describe", "ev", "-o", "json").ok(t)
	var desc topicDescJSON
	if err := json.Unmarshal([]byte(r.stdout), &desc); err != nil {
		t.Fatal(err)
	}
	var hw int64
	for _, p := range desc.Partitions {
		hw += p.HighWatermark
	}
	if desc.Name != "ev" || len(desc.Partitions) != 2 || hw != 5 || desc.Configs["retention.ms"] != "3600000" {
		t.Errorf("describe json: %+v", desc)
	}
	r = runCLI(t, addr, "", "topic", "describe", "ev").ok(t)
	if !strings.Contains(r.stdout, "PARTITION  LEADER  REPLICAS  ISR  HIGH-WATERMARK  LOG-START  LOG-END") {
		t.Errorf("describe table:\n%s", r.stdout)
	}

	runCLI(t, addr, "", "topic", "alter-config", "ev", "--set", "retention.ms=1000").ok(t)
	r = runCLI(t, addr, "", "topic", "list").ok(t)
	if !strings.Contains(r.stdout, "NAME") || !strings.Contains(r.stdout, "ev") {
		t.Errorf("list: %q", r.stdout)
	}
	r = runCLI(t, addr, "", "cluster", "info", "-o", "json").ok(t)
	var ci clusterJSON
	if err := json.Unmarshal([]byte(r.stdout), &ci); err != nil || len(ci.Brokers) != 1 || ci.Brokers[0].State != "alive" {
		t.Errorf("cluster info: %q %v", r.stdout, err)
	}

	r = runCLI(t, addr, "", "bench", "produce", "--topic", "bench", "--records", "2000", "--record-size", "50", "--producers", "2", "--partitions", "2", "-o", "json").ok(t)
	var bj benchJSON
	if err := json.Unmarshal([]byte(r.stdout), &bj); err != nil || bj.Records != 2000 || bj.RecordsPerSec <= 0 || bj.P99Ms <= 0 {
		t.Errorf("bench produce: %q %v", r.stdout, err)
	}
	r = runCLI(t, addr, "", "bench", "consume", "--topic", "bench", "--records", "2000").ok(t)
	if !strings.HasPrefix(r.stdout, "consumed 2000 records") {
		t.Errorf("bench consume: %q", r.stdout)
	}

	runCLI(t, addr, "", "topic", "delete", "ev").ok(t)
	r = runCLI(t, addr, "x\n", "produce", "ev")
	if r.code == 0 || r.stderr != "strata: topic \"ev\" does not exist (create it with: strata topic create ev); nothing was stored to ev (1 record sent, not acknowledged)\n" {
		t.Errorf("produce to deleted topic: %d %q", r.code, r.stderr)
	}
}

func TestCLIUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"consume", "t", "--offset", "soon"}, `strata: --offset: offset "soon": not a number`},
		{[]string{"consume", "t", "--format", "%z"}, "strata: --format"},
		{[]string{"topic", "list", "-o", "xml"}, `strata: --output "xml": want table or json`},
		{[]string{"topic", "create"}, "strata: topic create needs a topic name: strata topic create NAME"},
		{[]string{"produce", "t", "--key", "a", "--key-separator", ":"}, "strata: --key and --key-separator exclude each other"},
		{[]string{"produce", "t", "--compression", "brotli"}, `strata: --compression "brotli"`},
		{[]string{"topic", "create", "t", "-c", "novalue"}, `strata: --config "novalue": want key=value`},
		{[]string{"topic", "list", "--bogus"}, "strata: unknown flag: --bogus"},
		{[]string{"consume", "t", "--reset", "sometimes"}, `strata: --reset "sometimes": want earliest, latest or none`},
		{[]string{"topic", "delete-records", "t/0"}, "strata: --before OFFSET is required"},
		{[]string{"topic", "delete-records", "t/x", "--before", "1"}, `strata: "t/x": the partition must be a number`},
		{[]string{"topic", "delete-records", "t/0", "--before", "soon"}, `strata: --before "soon": want an offset from 0`},
		{[]string{"topic", "delete-records", "t/0", "--before", "-2"}, `strata: --before "-2"`},
	} {
		r := runCLI(t, "127.0.0.1:1", "", c.args...)
		if r.code == 0 || !strings.HasPrefix(r.stderr, c.want) || !oneErrorLine(r.stderr) {
			t.Errorf("%v: exit %d, stderr %q; want one line starting %q (and the usage line for a syntax error)", c.args, r.code, r.stderr, c.want)
		}
	}
}

// TestCLIUnreachableBroker: each way --brokers can be wrong is told apart,
// names the address, and fails at once (not after the retry timeout).
func TestCLIUnreachableBroker(t *testing.T) {
	httpAddr := brokertest.StartBroker(t).HTTPAddr()
	for _, c := range []struct {
		brokers, want string
	}{
		{"127.0.0.1:1", "strata: cannot reach a broker at 127.0.0.1:1: connection refused: is a broker running there?"},
		{"nosuchhost.invalid:9290", "strata: cannot reach a broker at nosuchhost.invalid:9290: no such host"},
		{httpAddr, "strata: cannot reach a broker at " + httpAddr + ": not a Strata API"},
		{"127.0.0.1", `strata: client: broker address "127.0.0.1" has no port`},
		{"http://127.0.0.1:9290", `strata: client: broker address "http://127.0.0.1:9290" is a URL: give host:port (127.0.0.1:9290)`},
	} {
		for _, args := range [][]string{{"topic", "list"}, {"consume", "t"}, {"produce", "t"}} {
			start := time.Now()
			r := runCLI(t, c.brokers, "x\n", args...)
			if r.code == 0 || !strings.HasPrefix(r.stderr, c.want) || !oneErrorLine(r.stderr) {
				t.Errorf("--brokers %s %v: exit %d, stderr %q; want one line starting %q", c.brokers, args, r.code, r.stderr, c.want)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("--brokers %s %v: took %v; the cause is final, it should fail at once", c.brokers, args, took)
			}
		}
	}
}

func TestEveryCommandHasHelp(t *testing.T) {
	root := newRootCmd(&env{})
	for _, c := range root.Commands() {
		if c.Name() == "help" || c.Name() == "completion" {
			continue
		}
		for _, sub := range append([]*cobra.Command{c}, c.Commands()...) {
			if sub.Short == "" || sub.Long == "" || sub.Example == "" {
				t.Errorf("%q lacks Short, Long or Example", sub.CommandPath())
			}
		}
	}
}
