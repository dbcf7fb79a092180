package main

// produce's input, acknowledgements and failure counts, and consume's
// --exit-at-end, --encoding and kcat verbs, against a real broker.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/brokertest"
)

// jsonLines decodes one JSON object per line into T.
func jsonLines[T any](t *testing.T, s string) []T {
	t.Helper()
	var out []T
	dec := json.NewDecoder(strings.NewReader(s))
	for {
		var v T
		if err := dec.Decode(&v); err == io.EOF {
			return out
		} else if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		out = append(out, v)
	}
}

func TestCLIProduceInputAndAcks(t *testing.T) {
	addr := brokertest.Start(t)
	runCLI(t, addr, "", "topic", "create", "in", "-p", "1").ok(t)

	// -o json: one ack per record, in order, on stdout; the summary on stderr.
	r := runCLI(t, addr, "a\nb\nc\n", "produce", "in", "-o", "json").ok(t)
	acks := jsonLines[ackJSON](t, r.stdout)
	if len(acks) != 3 || r.stderr != "produced 3 records to in\n" {
		t.Fatalf("acks %+v, stderr %q", acks, r.stderr)
	}
	for i, a := range acks {
		if a.Topic != "in" || a.Partition != 0 || a.Offset != int64(i) || time.Since(time.UnixMilli(a.Timestamp)) > time.Minute {
			t.Errorf("ack %d: %+v", i, a)
		}
	}

	// --delimiter: values hold newlines; \0 works; the key separator takes
	// the same escapes.
	r = runCLI(t, addr, "k1\tone\nline\x00k2\ttwo\x00", "produce", "in", "-D", `\0`, "-K", `\t`).ok(t)
	if r.stderr != "produced 2 records to in\n" {
		t.Errorf("-D '\\0': %q", r.stderr)
	}
	// The whole of stdin, and a whole file, as one record each; the file's
	// bytes are not UTF-8.
	runCLI(t, addr, "all\nof\nit\n", "produce", "in", "--delimiter", "").ok(t)
	bin := []byte{0xff, 0xfe, 0x00, '\n', 'x'}
	file := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(file, bin, 0o644); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, addr, "ignored\n", "produce", "in", "--value-file", file, "--key", "blob", "-o", "json").ok(t)
	if acks := jsonLines[ackJSON](t, r.stdout); len(acks) != 1 || acks[0].Offset != 6 {
		t.Errorf("--value-file ack: %q", r.stdout)
	}

	// -e reads what was there at start and exits 0; -o json keeps every
	// byte: base64, marked, where the value is not UTF-8.
	r = runCLI(t, addr, "", "consume", "in", "-e", "-o", "json").ok(t)
	recs := jsonLines[recordJSON](t, r.stdout)
	if len(recs) != 7 {
		t.Fatalf("consume -e: %d records: %q", len(recs), r.stdout)
	}
	if *recs[3].Key != "k1" || *recs[3].Value != "one\nline" || *recs[4].Key != "k2" || *recs[4].Value != "two" || *recs[5].Value != "all\nof\nit\n" {
		t.Errorf("delimited records: %+v %+v %+v", recs[3], recs[4], recs[5])
	}
	got, err := base64.StdEncoding.DecodeString(*recs[6].Value)
	if recs[6].ValueEncoding != "base64" || err != nil || !bytes.Equal(got, bin) || recs[6].KeyEncoding != "" || *recs[6].Key != "blob" {
		t.Errorf("binary value: %+v (%v)", recs[6], err)
	}
	r = runCLI(t, addr, "", "consume", "in", "--offset", "6", "-e", "-o", "json", "--encoding", "hex").ok(t)
	if want := `"key":"626c6f62","key_encoding":"hex","value":"fffe000a78","value_encoding":"hex"`; !strings.Contains(r.stdout, want) {
		t.Errorf("--encoding hex: %q", r.stdout)
	}
	// kcat's verbs.
	r = runCLI(t, addr, "", "consume", "in", "--offset", "3", "-n", "1", "-f", `%t/%p/%o %k=%s %K %S\n`).ok(t)
	if r.stdout != "in/0/3 k1=one\nline 2 8\n" {
		t.Errorf("kcat format: %q", r.stdout)
	}

	// Mistakes.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"produce", "in", "-D", `\x4`}, `strata: --delimiter "\\x4": \x wants two hex digits (see --help)`},
		{[]string{"produce", "in", "--value-file", file, "-D", "|"}, "strata: --value-file and --delimiter exclude each other: the file is one record (see --help)"},
		{[]string{"produce", "in", "--value-file", file + ".nope"}, "strata: --value-file: open " + file + ".nope: no such file or directory (see --help)"},
		{[]string{"produce", "in", "--timeout", "-1s"}, "strata: --timeout -1s is negative: give a duration such as 30s, or 0 for no limit (see --help)"},
		{[]string{"consume", "in", "--encoding", "utf16"}, `strata: --encoding "utf16": want text, base64 or hex (see --help)`},
	} {
		r := runCLI(t, addr, "x\n", c.args...)
		if r.code != 1 || !strings.HasPrefix(r.stderr, c.want) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%q: exit %d, stderr %q, want %q", c.args, r.code, r.stderr, c.want)
		}
	}
	r = runCLI(t, addr, "a\nb\n", "produce", "nosuch")
	if r.code != 1 || r.stderr != "strata: topic \"nosuch\" does not exist (create it with: strata topic create nosuch); nothing was stored to nosuch (1 record sent, not acknowledged)\n" {
		t.Errorf("unknown topic: exit %d, stderr %q", r.code, r.stderr)
	}
	r = runCLI(t, addr, "ok\n"+strings.Repeat("x", 20)+"\n", "produce", "in", "--max-line-bytes", "10")
	if r.code != 1 || r.stderr != "strata: stdin line 2: longer than --max-line-bytes (raise it, or split the input with --delimiter); stored all 1 record sent to in\n" {
		t.Errorf("long line: exit %d, stderr %q", r.code, r.stderr)
	}
}

// consume -e on partitions with nothing to read, and with records produced
// after it started (which it does not wait for).
func TestCLIConsumeExitAtEnd(t *testing.T) {
	addr := brokertest.Start(t)
	runCLI(t, addr, "", "topic", "create", "ee", "-p", "3").ok(t)
	r := runCLI(t, addr, "", "consume", "ee", "-e").ok(t)
	if r.stdout != "" || r.stderr != "" {
		t.Errorf("empty topic: %q %q", r.stdout, r.stderr)
	}
	runCLI(t, addr, "a\nb\n", "produce", "ee", "--partition", "2").ok(t)
	r = runCLI(t, addr, "", "consume", "ee", "-e", "-f", `%p:%s\n`).ok(t)
	if r.stdout != "2:a\n2:b\n" {
		t.Errorf("consume -e: %q", r.stdout)
	}
	r = runCLI(t, addr, "", "consume", "ee", "-e", "--offset", "end").ok(t)
	if r.stdout != "" {
		t.Errorf("consume -e --offset end: %q", r.stdout)
	}
	r = runCLI(t, addr, "", "consume", "ee", "-e", "--partition", "2", "--offset", "-1").ok(t)
	if r.stdout != "b\n" {
		t.Errorf("consume -e --offset -1: %q", r.stdout)
	}
	r = runCLI(t, addr, "", "consume", "nosuch", "-e")
	if r.code != 1 || r.stderr != "strata: topic \"nosuch\" does not exist (create it with: strata topic create nosuch)\n" {
		t.Errorf("consume -e nosuch: %d %q", r.code, r.stderr)
	}
}

// A broker lost mid-produce: after --timeout, the records it held fail, and
// the error says how many were stored first.
func TestCLIProduceBrokerLost(t *testing.T) {
	c := brokertest.StartCluster(t, 1)
	addr := c.APIAddrs()[0]
	runCLI(t, addr, "", "topic", "create", "lost").ok(t)

	in, feed := io.Pipe()
	var out, errb syncBuffer
	e := &env{stdin: in, stdout: &out, stderr: &errb,
		getenv:     func(k string) string { return map[string]string{"STRATA_BROKERS": addr}[k] },
		isTerminal: func() bool { return false }}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code := make(chan int, 1)
	go func() { code <- run(ctx, e, []string{"produce", "lost", "-o", "json", "--timeout", "1s"}) }()
	fmt.Fprint(feed, strings.Repeat("before\n", 100))
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(out.String(), "\n") < 100 {
		if time.Now().After(deadline) {
			t.Fatalf("acks: %q, stderr %q", out.String(), errb.String())
		}
		time.Sleep(10 * time.Millisecond) // the command's output; nothing to wait on
	}
	c.Stop(1)
	fmt.Fprint(feed, strings.Repeat("after\n", 50))
	feed.Close()
	if got := <-code; got != 1 {
		t.Fatalf("exit %d, stderr %q", got, errb.String())
	}
	m := regexp.MustCompile(`; stored 100 of (\d+) records to lost, the rest were not acknowledged\n$`).FindStringSubmatch(errb.String())
	if m == nil || strings.Count(errb.String(), "\n") != 1 {
		t.Fatalf("stderr %q", errb.String())
	}
	if n, _ := strconv.Atoi(m[1]); n <= 100 || n > 150 {
		t.Errorf("sent %d records", n)
	}
}

// consume -e --group: prints what was there at start, commits it, and
// leaves what came after for the next run.
func TestCLIConsumeGroupExitAtEnd(t *testing.T) {
	addr := brokertest.Start(t)
	runCLI(t, addr, "", "topic", "create", "ge", "-p", "2").ok(t)
	runCLI(t, addr, "a\nb\n", "produce", "ge", "--partition", "0").ok(t)
	runCLI(t, addr, "c\n", "produce", "ge", "--partition", "1").ok(t)
	r := runCLI(t, addr, "", "consume", "ge", "--group", "gx", "-e", "-f", `%p:%s\n`).ok(t)
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 3 || !strings.Contains(r.stdout, "0:a\n0:b\n") {
		t.Errorf("first run: %q", r.stdout)
	}
	r = runCLI(t, addr, "", "consume", "ge", "--group", "gx", "-e").ok(t)
	if r.stdout != "" {
		t.Errorf("second run, nothing new: %q", r.stdout)
	}
	runCLI(t, addr, "d\n", "produce", "ge", "--partition", "1").ok(t)
	r = runCLI(t, addr, "", "consume", "ge", "--group", "gx", "-e").ok(t)
	if r.stdout != "d\n" {
		t.Errorf("third run: %q", r.stdout)
	}
	d := describeGroupJSON(t, addr, "gx")
	if d.TotalLag != 0 {
		t.Errorf("lag after -e: %+v", d)
	}
}
