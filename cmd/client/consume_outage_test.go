package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/brokertest"
)

// waitFor polls buf until it holds want, failing after 30 s.
func waitFor(t *testing.T, what string, buf *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(buf.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %q not seen within 30s; have %q", what, want, buf.String())
		}
		time.Sleep(50 * time.Millisecond) // the command writes when it writes; nothing to wait on
	}
}

// TestConsumeOutlivesABrokerOutage: a following consume whose broker goes
// away says so once on stderr, keeps trying, says when the broker is
// back, and goes on printing records; it does not exit or stay silent.
func TestConsumeOutlivesABrokerOutage(t *testing.T) {
	c := brokertest.StartCluster(t, 1)
	addr := c.Broker(1).APIAddr()
	runCLI(t, addr, "", "topic", "create", "out", "-p", "1").ok(t)
	runCLI(t, addr, "before\n", "produce", "out").ok(t)

	var stdout, stderr syncBuffer
	e := &env{
		stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr,
		getenv:     func(k string) string { return map[string]string{"STRATA_BROKERS": addr}[k] },
		isTerminal: func() bool { return false },
	}
	ctx, cancel := context.WithCancel(context.Background())
	code := make(chan int, 1)
	go func() { code <- run(ctx, e, []string{"consume", "out", "--offset", "earliest"}) }()
	defer func() {
		cancel()
		if c := <-code; c != 0 {
			t.Errorf("consume exited %d; stderr %q", c, stderr.String())
		}
	}()
	waitFor(t, "first record", &stdout, "before\n")

	c.Stop(1)
	waitFor(t, "the outage is reported", &stderr, "strata: lost the brokers (")
	c.Restart(1)
	runCLI(t, addr, "after\n", "produce", "out").ok(t)
	waitFor(t, "a record after the outage", &stdout, "after\n")
	waitFor(t, "the return is reported", &stderr, "strata: reached the brokers again after ")
	if n := strings.Count(stderr.String(), "lost the brokers"); n != 1 {
		t.Errorf("the outage was reported %d times: %q", n, stderr.String())
	}
}

// TestBenchConsumeBrokersLost: bench consume whose broker goes away stops
// at --idle with a warning that says the brokers cannot be reached, not
// that the topic holds fewer records than asked. --idle leaves the client
// 5 s after the stop to find the broker gone (with 3 s, about 2, CI under
// -race once saw no failed fetch yet).
func TestBenchConsumeBrokersLost(t *testing.T) {
	c := brokertest.StartCluster(t, 1)
	addr := c.Broker(1).APIAddr()
	runCLI(t, addr, "", "topic", "create", "bl", "-p", "1").ok(t)

	var stdout, stderr syncBuffer
	e := &env{
		stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr,
		getenv:     func(k string) string { return map[string]string{"STRATA_BROKERS": addr}[k] },
		isTerminal: func() bool { return false },
	}
	code := make(chan int, 1)
	go func() {
		code <- run(context.Background(), e, []string{"bench", "consume", "--topic", "bl", "--records", "10", "--offset", "end", "--idle", "6s", "--progress"})
	}()
	waitFor(t, "bench consume polling", &stderr, "progress: 0/10 records")
	c.Stop(1)
	if got := <-code; got != 0 {
		t.Fatalf("bench consume exited %d; stderr %q", got, stderr.String())
	}
	want := "strata: warning: no record for 6s (--idle), and the brokers cannot be reached: "
	if !strings.Contains(stderr.String(), want) || strings.Contains(stderr.String(), "fewer records than asked") {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
	// The address is the one given in --brokers: the broker is down, its
	// advertised address is not to blame.
	if !strings.Contains(stderr.String(), "the broker is not answering there") || strings.Contains(stderr.String(), "--advertised-listeners") {
		t.Errorf("stderr %q: want the broker named as not answering, not its advertised address blamed", stderr.String())
	}
}
