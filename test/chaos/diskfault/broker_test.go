package diskfault

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stratalog/strata/pkg/client"
	"github.com/stratalog/strata/test/chaos/internal/chaostest"
)

func buildBroker(t *testing.T) string { return chaostest.BuildBroker(t) }

var listening = regexp.MustCompile(`listening: api=(\S+) http=`)

// broker is one strata-broker process on loopback.
type broker struct {
	cmd     *exec.Cmd
	api     string
	waited  chan struct{}
	logPath string
}

func startBroker(t *testing.T, bin, dataDir, logPath string, extra ...string) *broker {
	t.Helper()
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	args := append([]string{"--data-dir", dataDir, "--api-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--raft-addr", "127.0.0.1:0", "--gossip-addr", "127.0.0.1:0", "--fsync", "always", "--log-level", "info"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stderr = lf
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := &broker{cmd: cmd, waited: make(chan struct{}), logPath: logPath}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	go func() { cmd.Wait(); close(b.waited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGKILL)
		<-b.waited
	})
	select {
	case b.api = <-addr:
	case <-b.waited:
		t.Fatalf("strata-broker exited before listening: %v\n%s", cmd.ProcessState, tail(logPath, 30))
	case <-time.After(30 * time.Second):
		t.Fatal("strata-broker did not listen within 30s")
	}
	return b
}

func (b *broker) running() bool {
	select {
	case <-b.waited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and waits up to 30 s; it returns the exit code.
func (b *broker) stop(t *testing.T) int {
	t.Helper()
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.waited:
		return b.cmd.ProcessState.ExitCode()
	case <-time.After(30 * time.Second):
		t.Fatal("strata-broker did not stop within 30s of SIGTERM")
		return -1
	}
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func poll(ctx context.Context, timeout time.Duration, cond func(ctx context.Context) error) error {
	return chaostest.Poll(ctx, timeout, 5*time.Second, cond)
}

// history is what a producer saw: acknowledged values by offset, and the
// errors of failed sends.
type history struct {
	mu     sync.Mutex
	acked  map[int64]string
	errs   []string
	okAt   time.Time // last acknowledgement
	failAt time.Time // last failure
}

// produceLoop sends batches of 64 records of 1 KiB with unique values
// until ctx ends.
func produceLoop(ctx context.Context, p *client.Producer, topic string, h *history) {
	pad := strings.Repeat("x", 1000)
	for n := 0; ctx.Err() == nil; n++ {
		var recs []*client.Record
		for i := range 64 {
			recs = append(recs, &client.Record{Topic: topic, Value: fmt.Appendf(nil, "%06d-%02d-%s", n, i, pad)})
		}
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		res := p.ProduceSync(sctx, recs...)
		cancel()
		h.mu.Lock()
		for _, r := range res {
			if r.Err == nil {
				h.acked[r.Record.Offset] = string(r.Record.Value)
				h.okAt = time.Now()
			} else if ctx.Err() == nil {
				h.errs = append(h.errs, r.Err.Error())
				h.failAt = time.Now()
			}
		}
		h.mu.Unlock()
	}
}

// readAll reads partition 0 from the start to its high watermark, once
// that is at least atLeast (a restarted broker reports 0 until its
// partition's Raft group has a leader again).
func readAll(ctx context.Context, t *testing.T, api, topic string, atLeast int64) map[int64]string {
	t.Helper()
	cl, err := client.New([]string{api})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var hw int64
	if err := poll(ctx, 30*time.Second, func(ctx context.Context) error {
		d, err := cl.Admin().DescribeTopic(ctx, topic)
		if err != nil {
			return err
		}
		if hw = d.Partitions[0].HighWatermark; hw < atLeast {
			return fmt.Errorf("high watermark %d, %d acknowledged", hw, atLeast)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	cs, err := cl.NewConsumer(topic, client.Partitions(0), client.StartAt(client.Earliest()), client.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	got := map[int64]string{}
	last := int64(-1)
	for last+1 < hw {
		recs, err := cs.Poll(ctx)
		if err != nil {
			t.Fatalf("read after offset %d of %d: %v", last, hw, err)
		}
		for _, r := range recs {
			if r.Offset <= last {
				t.Fatalf("offset %d read after %d", r.Offset, last)
			}
			last = r.Offset
			got[r.Offset] = string(r.Value)
		}
	}
	return got
}

// ackedEnd is one past the highest acknowledged offset.
func (h *history) ackedEnd() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	end := int64(0)
	for o := range h.acked {
		end = max(end, o+1)
	}
	return end
}

func checkAcked(t *testing.T, h *history, got map[int64]string, when string) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	lost := 0
	for o, v := range h.acked {
		if got[o] != v {
			if lost < 5 {
				t.Errorf("%s: offset %d holds %.20q, acknowledged as %.20q", when, o, got[o], v)
			}
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%s: %d of %d acknowledged records lost", when, lost, len(h.acked))
	}
}

// TestBrokerDiskFull: a broker whose data directory fills up under produce
// refuses writes with an error and keeps running; every acknowledged
// record stays readable, writes succeed again once space is freed, and
// after a clean stop the data directory verifies clean and a restarted
// broker serves every acknowledged record.
func TestBrokerDiskFull(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin := buildBroker(t)
	base := t.TempDir()
	vol, err := Mount(filepath.Join(base, "data"), 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := vol.Close(); err != nil {
			t.Error(err)
		}
	}()
	logPath := filepath.Join(base, "broker.log")
	b := startBroker(t, bin, vol.Dir(), logPath)
	defer func() {
		if t.Failed() {
			t.Logf("---- broker log ----\n%s", tail(logPath, 60))
		}
	}()
	cl, err := client.New([]string{b.api})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const topic = "full"
	if err := poll(ctx, 30*time.Second, func(ctx context.Context) error {
		_, err := cl.Admin().CreateTopic(ctx, topic, 1, 1, map[string]string{"segment.bytes": fmt.Sprint(4 << 20)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	prod := cl.NewProducer(client.RequiredAcks(client.AcksQuorum), client.DeliveryTimeout(5*time.Second))
	h := &history{acked: map[int64]string{}}
	pctx, stopProducing := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); produceLoop(pctx, prod, topic, h) }()
	defer func() { stopProducing(); <-done; prod.Close(context.Background()) }()

	ackedN := func() int { h.mu.Lock(); defer h.mu.Unlock(); return len(h.acked) }
	if err := poll(ctx, time.Minute, func(context.Context) error {
		if n := ackedN(); n < 8000 {
			return fmt.Errorf("%d acknowledged", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	filled := time.Now()
	if err := vol.Fill(); err != nil {
		t.Fatal(err)
	}
	if err := poll(ctx, time.Minute, func(context.Context) error {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.failAt.Before(filled) || h.okAt.After(h.failAt) {
			return fmt.Errorf("produce still succeeds (%d acknowledged, last at %s)", len(h.acked), h.okAt.Format(time.StampMilli))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	first := h.errs[len(h.errs)-1]
	t.Logf("disk full: produce fails %s after Fill: %s", h.failAt.Sub(filled).Round(time.Millisecond), first)
	h.mu.Unlock()
	if !strings.Contains(first, "no space left on device") {
		t.Errorf("produce to a full disk fails with %q, want it to say no space is left", first)
	}
	// Full for a while: the broker keeps running and answering.
	fullFor := time.Now().Add(5 * time.Second)
	if err := poll(ctx, 10*time.Second, func(ctx context.Context) error {
		if !b.running() {
			return nil
		}
		if time.Now().Before(fullFor) {
			return fmt.Errorf("holding the disk full")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !b.running() {
		t.Fatalf("broker exited with a full disk: %v", b.cmd.ProcessState)
	}
	_, err = cl.Admin().Metadata(ctx)
	t.Logf("metadata with a full disk: %v", err)

	freed := time.Now()
	if err := vol.Unfill(); err != nil {
		t.Fatal(err)
	}
	before := ackedN()
	if err := poll(ctx, time.Minute, func(context.Context) error {
		if n := ackedN(); n < before+2000 {
			return fmt.Errorf("%d acknowledged since the space was freed", n-before)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("space freed: 2000 more acknowledged within %s", time.Since(freed).Round(time.Millisecond))
	stopProducing()
	<-done
	checkAcked(t, h, readAll(ctx, t, b.api, topic, h.ackedEnd()), "after freeing")

	if code := b.stop(t); code != 0 {
		t.Errorf("broker exited with %d after SIGTERM", code)
	}
	out, err := exec.CommandContext(ctx, bin, "verify", "--data-dir", vol.Dir(), "--problems-only").CombinedOutput()
	if err != nil {
		t.Errorf("verify after a full disk: %v\n%s", err, out)
	}
	b2 := startBroker(t, bin, vol.Dir(), logPath)
	checkAcked(t, h, readAll(ctx, t, b2.api, topic, h.ackedEnd()), "after restart")
	h.mu.Lock()
	t.Logf("%d acknowledged, %d failed sends", len(h.acked), len(h.errs))
	h.mu.Unlock()
}
