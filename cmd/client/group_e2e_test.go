package main

// consume --group and the group commands against a real in-process
// broker and its group coordinator.

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/brokertest"
	"github.com/stratalog/strata/pkg/client"
)

func describeGroupJSON(t *testing.T, addr, group string) groupDescJSON {
	t.Helper()
	r := runCLI(t, addr, "", "group", "describe", group, "-o", "json").ok(t)
	var d groupDescJSON
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		t.Fatalf("describe json %q: %v", r.stdout, err)
	}
	return d
}

func TestCLIGroupConsume(t *testing.T) {
	addr := brokertest.Start(t)
	runCLI(t, addr, "", "topic", "create", "ev", "-p", "2").ok(t)
	runCLI(t, addr, "a\nb\nc\n", "produce", "ev", "--partition", "0").ok(t)
	runCLI(t, addr, "d\ne\n", "produce", "ev", "--partition", "1").ok(t)

	// Joins, reads everything, commits, leaves after a quiet second.
	r := runCLI(t, addr, "", "consume", "ev", "--group", "g", "--timeout", "1s", "--format", `%p/%o %v\n`).ok(t)
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 5 || !strings.Contains(r.stdout, "0/2 c\n") || !strings.Contains(r.stdout, "1/1 e\n") {
		t.Fatalf("consume --group: %q", r.stdout)
	}
	d := describeGroupJSON(t, addr, "g")
	if len(d.Members) != 0 || len(d.Partitions) != 2 || d.TotalLag != 0 {
		t.Errorf("after the member left: %+v", d)
	}
	for _, p := range d.Partitions {
		if p.Committed != p.LogEnd || p.Lag != 0 {
			t.Errorf("partition %d: committed %d, log end %d, lag %d", p.Partition, p.Committed, p.LogEnd, p.Lag)
		}
	}

	// Again: nothing new. Then two new records, and -n 1 commits only the one printed.
	r = runCLI(t, addr, "", "consume", "ev", "--group", "g", "--timeout", "1s").ok(t)
	if r.stdout != "" {
		t.Errorf("nothing new, yet: %q", r.stdout)
	}
	runCLI(t, addr, "f\ng\n", "produce", "ev", "--partition", "0").ok(t)
	r = runCLI(t, addr, "", "consume", "ev", "--group", "g", "-n", "1", "--format", `%o %v\n`).ok(t)
	if r.stdout != "3 f\n" {
		t.Errorf("-n 1: %q", r.stdout)
	}
	if d := describeGroupJSON(t, addr, "g"); d.TotalLag != 1 {
		t.Errorf("one record left unread: total lag %d; %+v", d.TotalLag, d)
	}
	r = runCLI(t, addr, "", "consume", "ev", "--group", "g", "--timeout", "1s", "-o", "json").ok(t)
	var rec recordJSON
	if err := json.Unmarshal([]byte(r.stdout), &rec); err != nil || *rec.Value != "g" || rec.Offset != 4 {
		t.Errorf("the record left: %q %v", r.stdout, err)
	}

	// A new group starting at the end reads only what comes later.
	runCLI(t, addr, "", "consume", "ev", "--group", "late", "--offset", "latest", "--timeout", "1s").ok(t)
	runCLI(t, addr, "h\n", "produce", "ev", "--partition", "1").ok(t)
	r = runCLI(t, addr, "", "consume", "ev", "--group", "late", "--timeout", "1s", "--format", `%v\n`).ok(t)
	if r.stdout != "h\n" {
		t.Errorf("group from latest: %q", r.stdout)
	}

	r = runCLI(t, addr, "", "consume", "nope", "--group", "g")
	if r.code == 0 || r.stderr != "strata: topic \"nope\" does not exist (create it with: strata topic create nope)\n" {
		t.Errorf("consume --group of a missing topic: %d %q", r.code, r.stderr)
	}

	// The table output, and the list.
	r = runCLI(t, addr, "", "group", "describe", "g").ok(t)
	for _, want := range []string{"GROUP: g", "MEMBER  INSTANCE", "TOPIC  PARTITION  COMMITTED  LOG-END  LAG  OWNER", "TOTAL-LAG: 1"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("describe table lacks %q:\n%s", want, r.stdout)
		}
	}
	r = runCLI(t, addr, "", "group", "list").ok(t)
	if !strings.Contains(r.stdout, "GROUP") || !strings.Contains(r.stdout, "late") || !strings.Contains(r.stdout, "\ng ") {
		t.Errorf("list:\n%s", r.stdout)
	}
	r = runCLI(t, addr, "", "group", "list", "-o", "json").ok(t)
	var groups []groupSummaryJSON
	if err := json.Unmarshal([]byte(r.stdout), &groups); err != nil || len(groups) != 2 {
		t.Errorf("list json: %q %v", r.stdout, err)
	}
}

func TestCLIGroupSeekAndDelete(t *testing.T) {
	addr := brokertest.Start(t)
	runCLI(t, addr, "", "topic", "create", "ev", "-p", "2").ok(t)
	runCLI(t, addr, "a\nb\nc\n", "produce", "ev", "--partition", "0").ok(t)
	runCLI(t, addr, "d\ne\n", "produce", "ev", "--partition", "1").ok(t)
	runCLI(t, addr, "", "consume", "ev", "--group", "g", "--timeout", "1s").ok(t)

	r := runCLI(t, addr, "", "group", "seek", "g", "--to", "start").ok(t)
	for _, want := range []string{"TOPIC  PARTITION  CURRENT  NEW", "ev     0          3        0", "ev     1          2        0", "plan only"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("plan lacks %q:\n%s", want, r.stdout)
		}
	}
	if d := describeGroupJSON(t, addr, "g"); d.TotalLag != 0 {
		t.Errorf("a plan moved offsets: lag %d", d.TotalLag)
	}
	r = runCLI(t, addr, "", "group", "seek", "g", "--to", "-1", "--topic", "ev", "--execute", "-o", "json").ok(t)
	var plan seekJSON
	if err := json.Unmarshal([]byte(r.stdout), &plan); err != nil || !plan.Executed || len(plan.Partitions) != 2 ||
		plan.Partitions[0].New != 2 || plan.Partitions[1].New != 1 {
		t.Fatalf("seek -1 --execute: %q %v", r.stdout, err)
	}
	r = runCLI(t, addr, "", "consume", "ev", "--group", "g", "--timeout", "1s", "--format", `%v\n`).ok(t)
	if r.stdout != "c\ne\n" && r.stdout != "e\nc\n" {
		t.Errorf("after seek to -1: %q", r.stdout)
	}

	// With a member: seek --execute and delete are refused.
	c, err := client.New([]string{addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	gc, err := c.NewGroupConsumer("g", client.Topics("ev"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for len(gc.Assignment()) == 0 {
		if _, err := gc.Poll(ctx); err != nil {
			t.Fatal(err)
		}
	}
	r = runCLI(t, addr, "", "group", "seek", "g", "--to", "start", "--execute")
	if r.code == 0 || !strings.Contains(r.stderr, `group "g" has 1 active members`) {
		t.Errorf("seek with a member: %d %q", r.code, r.stderr)
	}
	r = runCLI(t, addr, "", "group", "seek", "g", "--to", "start", "--execute", "--force")
	if r.code == 0 || !strings.Contains(r.stderr, `group "g" has active members`) {
		t.Errorf("seek --force with a member: %d %q", r.code, r.stderr)
	}
	r = runCLI(t, addr, "", "group", "delete", "g")
	if r.code == 0 || !strings.Contains(r.stderr, `group "g" has active members: stop its consumers first`) {
		t.Errorf("delete with a member: %d %q", r.code, r.stderr)
	}
	if err := gc.Close(ctx); err != nil {
		t.Fatal(err)
	}

	r = runCLI(t, addr, "", "group", "delete", "g").ok(t)
	if r.stdout != "deleted group \"g\"\n" {
		t.Errorf("delete: %q", r.stdout)
	}
	r = runCLI(t, addr, "", "group", "describe", "g")
	if r.code == 0 || r.stderr != "strata: group \"g\" does not exist (list the groups with: strata group list)\n" {
		t.Errorf("describe a deleted group: %d %q", r.code, r.stderr)
	}
	r = runCLI(t, addr, "", "group", "seek", "nobody", "--to", "end")
	if r.code == 0 || !strings.Contains(r.stderr, "has no committed offsets: name the topic to move with --topic") {
		t.Errorf("seek a group without commits: %d %q", r.code, r.stderr)
	}
}

func TestCLIGroupUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"consume", "t", "--group", "g", "--partition", "1"}, "strata: --partition does not apply with --group"},
		{[]string{"consume", "t", "--group", "g", "--offset", "5"}, `strata: --offset "5" with --group: want earliest or latest`},
		{[]string{"consume", "t", "--group", "g", "--reset", "none"}, "strata: --reset does not apply with --group"},
		{[]string{"group", "seek", "g"}, "strata: --to is required"},
		{[]string{"group", "seek", "g", "--to", "soon"}, `strata: --to: offset "soon"`},
		{[]string{"group", "describe"}, "strata: group describe needs a group"},
	} {
		r := runCLI(t, "127.0.0.1:1", "", c.args...)
		if r.code == 0 || !strings.HasPrefix(r.stderr, c.want) || !oneErrorLine(r.stderr) {
			t.Errorf("%v: exit %d, stderr %q; want one line starting %q", c.args, r.code, r.stderr, c.want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe to read while a command writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Ctrl-C (the command's context ending) leaves the group cleanly, after
// committing what was printed.
func TestCLIGroupConsumeInterrupted(t *testing.T) {
	addr := brokertest.Start(t)
	runCLI(t, addr, "", "topic", "create", "ev", "-p", "1").ok(t)
	runCLI(t, addr, "a\nb\n", "produce", "ev").ok(t)

	var out, errb syncBuffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb,
		getenv:     func(k string) string { return map[string]string{"STRATA_BROKERS": addr}[k] },
		isTerminal: func() bool { return false }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	code := make(chan int, 1)
	go func() { code <- run(ctx, e, []string{"consume", "ev", "--group", "g", "--format", `%v\n`}) }()
	deadline := time.Now().Add(20 * time.Second)
	for out.String() != "a\nb\n" {
		if time.Now().After(deadline) {
			t.Fatalf("consume printed %q, stderr %q", out.String(), errb.String())
		}
		time.Sleep(10 * time.Millisecond) // the command's output; nothing to wait on
	}
	cancel()
	if c := <-code; c != 0 {
		t.Fatalf("interrupted consume: exit %d, stderr %q", c, errb.String())
	}
	d := describeGroupJSON(t, addr, "g")
	if len(d.Members) != 0 || len(d.Partitions) != 1 || d.Partitions[0].Committed != 2 {
		t.Errorf("after Ctrl-C: %+v", d)
	}
}
