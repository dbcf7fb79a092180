package clockskew

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/stratalog/strata/pkg/client"
	"github.com/stratalog/strata/test/chaos/internal/chaostest"
)

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "clockskew: tests need root (time namespaces)")
		os.Exit(1)
	}
	goleak.VerifyTestMain(m)
}

// TestWrapRunsInPlaceWithOffsets: a wrapped program is the started
// process itself, and its boot clock (/proc/uptime) is ahead by the offset.
func TestWrapRunsInPlaceWithOffsets(t *testing.T) {
	name, args := Wrap(240*time.Hour, 240*time.Hour, "cat", "/proc/uptime")
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		t.Fatal(err)
	}
	var skewed, real float64
	fmt.Sscan(string(out), &skewed)
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Sscan(string(b), &real)
	if d := skewed - real - 240*3600; d < -5 || d > 5 {
		t.Fatalf("uptime in the namespace %.0f s, outside %.0f s: want 240 h more", skewed, real)
	}

	name, args = Wrap(time.Hour, time.Hour, "sleep", "60")
	cmd := exec.Command(name, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	if err := poll(context.Background(), 5*time.Second, func(context.Context) error {
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", cmd.Process.Pid))
		if err != nil || filepath.Base(exe) != "sleep" {
			return fmt.Errorf("pid %d runs %q (%v), want sleep", cmd.Process.Pid, exe, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestFileSetOffset(t *testing.T) {
	f, err := NewFile(filepath.Join(t.TempDir(), "clock"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []time.Duration{0, 48 * time.Hour, -90 * time.Second} {
		if err := f.Set(d); err != nil {
			t.Fatal(err)
		}
		if got, err := f.Offset(); err != nil || got != d {
			t.Fatalf("Set(%s), read %s %v", d, got, err)
		}
	}
}

func buildBroker(t *testing.T) string { return chaostest.BuildBroker(t) }

func freePort(t *testing.T, used map[string]bool) string { return chaostest.FreePort(t, used) }

var listening = regexp.MustCompile(`listening: api=(\S+) http=`)

// node is one broker of the test's cluster.
type node struct {
	api     string
	clock   *File
	cmd     *exec.Cmd
	logPath string
}

// startCluster starts n brokers on loopback, each with its own clock
// file; node 1 (index 0) also runs in a time namespace with its monotonic
// and boot clocks mono ahead.
func startCluster(t *testing.T, bin string, n int, mono time.Duration, extra ...string) []*node {
	t.Helper()
	dir := t.TempDir()
	used := map[string]bool{}
	type addrs struct{ api, http, raft, gossip string }
	var as []addrs
	var joins []string
	for range n {
		a := addrs{freePort(t, used), freePort(t, used), freePort(t, used), freePort(t, used)}
		as = append(as, a)
		joins = append(joins, a.gossip)
	}
	var nodes []*node
	for i, a := range as {
		clock, err := NewFile(filepath.Join(dir, fmt.Sprintf("node%d.clock", i+1)))
		if err != nil {
			t.Fatal(err)
		}
		nd := &node{api: a.api, clock: clock, logPath: filepath.Join(dir, fmt.Sprintf("node%d.log", i+1))}
		args := append([]string{"--node-id", fmt.Sprint(i + 1), "--data-dir", filepath.Join(dir, fmt.Sprintf("node%d", i+1)),
			"--api-addr", a.api, "--http-addr", a.http, "--raft-addr", a.raft, "--gossip-addr", a.gossip,
			"--bootstrap-expect", fmt.Sprint(n), "--join", strings.Join(joins, ","), "--cluster-secret", chaostest.ClusterSecret,
			"--fsync", "always", "--log-level", "info", "--debug-clock-offset-file", clock.Path()}, extra...)
		name := bin
		if i == 0 {
			name, args = Wrap(mono, mono, bin, args...)
		}
		lf, err := os.Create(nd.logPath)
		if err != nil {
			t.Fatal(err)
		}
		nd.cmd = exec.Command(name, args...)
		nd.cmd.Stderr = lf
		out, err := nd.cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := nd.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lf.Close()
		waited, addr := make(chan struct{}), make(chan string, 1)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if m := listening.FindStringSubmatch(sc.Text()); m != nil {
					addr <- m[1]
				}
			}
		}()
		go func() { nd.cmd.Wait(); close(waited) }()
		t.Cleanup(func() {
			nd.cmd.Process.Signal(syscall.SIGKILL)
			<-waited
			if t.Failed() {
				b, _ := os.ReadFile(nd.logPath)
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				t.Logf("---- last lines of node %d's log ----\n%s", i+1, strings.Join(lines[max(0, len(lines)-30):], "\n"))
			}
		})
		select {
		case <-addr:
		case <-waited:
			t.Fatalf("node %d exited before listening: %v", i+1, nd.cmd.ProcessState)
		case <-time.After(30 * time.Second):
			t.Fatalf("node %d did not listen within 30s", i+1)
		}
		nodes = append(nodes, nd)
	}
	return nodes
}

func poll(ctx context.Context, timeout time.Duration, cond func(ctx context.Context) error) error {
	return chaostest.Poll(ctx, timeout, 5*time.Second, cond)
}

func partition0(ctx context.Context, adm *client.Admin, topic string) (client.PartitionDetail, error) {
	d, err := adm.DescribeTopic(ctx, topic)
	if err != nil {
		return client.PartitionDetail{}, err
	}
	if len(d.Partitions) != 1 {
		return client.PartitionDetail{}, fmt.Errorf("%d partitions", len(d.Partitions))
	}
	return d.Partitions[0], nil
}

func produce(ctx context.Context, p *client.Producer, topic, prefix string, n int, acked map[int64]string) error {
	pad := strings.Repeat("x", 1000)
	for i := 0; i < n; i += 100 {
		var recs []*client.Record
		for j := i; j < min(i+100, n); j++ {
			recs = append(recs, &client.Record{Topic: topic, Value: fmt.Appendf(nil, "%s-%05d-%s", prefix, j, pad)})
		}
		res := p.ProduceSync(ctx, recs...)
		if err := res.FirstErr(); err != nil {
			return err
		}
		for _, r := range res {
			acked[r.Record.Offset] = string(r.Record.Value)
		}
	}
	return nil
}

// TestSkewedLeader: a three-broker cluster whose node 1 runs with its
// monotonic and boot clocks 10 days ahead and leads the partition while
// its wall clock is first an hour behind, then 30 minutes ahead of the
// others'. Every acknowledged record stays readable at its offset, the
// replicas agree, and retention by time (retention.ms one hour, checked
// every 200 ms) deletes nothing written seconds ago.
func TestSkewedLeader(t *testing.T) { skewedLeader(t, 30*time.Minute) }

// TestLeaderAheadOfRetention is TestSkewedLeader with the leader's wall
// clock 48 hours ahead, beyond retention.ms. It failed before retention
// used the time the brokers' clocks agree on (cluster.AgreedNow): the
// leader took every closed segment for expired and committed a new log
// start, which every replica applied, so records acknowledged seconds
// before were deleted cluster-wide.
func TestLeaderAheadOfRetention(t *testing.T) { skewedLeader(t, 48*time.Hour) }

func skewedLeader(t *testing.T, ahead time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bin := buildBroker(t)
	const mono = 240 * time.Hour
	nodes := startCluster(t, bin, 3, mono, "--retention-check-interval", "200ms")
	// Node 1 runs in the time namespace, in place.
	offs, err := os.ReadFile(fmt.Sprintf("/proc/%d/timens_offsets", nodes[0].cmd.Process.Pid))
	if err != nil || !regexp.MustCompile(fmt.Sprintf(`monotonic\s+%d\s`, int64(mono/time.Second))).Match(offs) {
		t.Fatalf("node 1's time namespace offsets: %q %v", offs, err)
	}
	var apis []string
	for _, nd := range nodes {
		apis = append(apis, nd.api)
	}
	cl, err := client.New(apis)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := cl.Admin()
	const topic = "skew"
	if err := poll(ctx, time.Minute, func(ctx context.Context) error {
		// The leader's clock runs an hour behind the producer's for a
		// while: the topic's timestamp window (after.max.ms, 1 h by
		// default) must admit records it sees an hour in the future.
		_, err := adm.CreateTopic(ctx, topic, 1, 3, map[string]string{"retention.ms": "3600000", "segment.bytes": "65536", "max.message.bytes": "65536",
			"message.timestamp.after.max.ms": "7200000"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := poll(ctx, time.Minute, func(ctx context.Context) error {
		pd, err := partition0(ctx, adm, topic)
		if err != nil {
			return err
		}
		if len(pd.InSyncReplicas) != 3 {
			return fmt.Errorf("in sync %v", pd.InSyncReplicas)
		}
		if pd.Leader != 1 {
			if _, err := adm.TransferLeader(ctx, topic, 0, 1); err != nil {
				return err
			}
			return fmt.Errorf("led by %d", pd.Leader)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	prod := cl.NewProducer(client.RequiredAcks(client.AcksQuorum), client.BatchMaxBytes(60000))
	defer prod.Close(ctx)
	acked := map[int64]string{}
	if err := nodes[0].clock.Set(-time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := produce(ctx, prod, topic, "behind", 1000, acked); err != nil {
		t.Fatalf("produce, leader's clock an hour behind: %v", err)
	}
	if err := nodes[0].clock.Set(ahead); err != nil {
		t.Fatal(err)
	}
	if err := produce(ctx, prod, topic, "ahead", 1000, acked); err != nil {
		t.Fatalf("produce, leader's clock %s ahead: %v", ahead, err)
	}
	pd, err := partition0(ctx, adm, topic)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d acknowledged; %s/0: leader %d, %d segments, log start %d, high watermark %d",
		len(acked), topic, pd.Leader, pd.Segments, pd.LogStartOffset, pd.HighWatermark)
	if pd.Segments < 10 {
		t.Fatalf("%d segments: want closed ones for retention to consider", pd.Segments)
	}

	// Retention runs every 200 ms on the leader: give it 25 passes with
	// its clock ahead.
	held := time.Now().Add(5 * time.Second)
	var moved int64
	_ = poll(ctx, 10*time.Second, func(ctx context.Context) error {
		pd, err := partition0(ctx, adm, topic)
		if err == nil && pd.LogStartOffset > 0 {
			moved = pd.LogStartOffset
			return nil
		}
		if time.Now().Before(held) {
			return fmt.Errorf("holding")
		}
		return nil
	})
	if moved > 0 {
		t.Errorf("retention moved %s/0's log start to %d: records written seconds ago were deleted because the leader's clock runs %s ahead (retention.ms 1h)", topic, moved, ahead)
	}

	vr, err := adm.VerifyPartition(ctx, topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !vr.Agree || len(vr.Replicas) != 3 {
		t.Errorf("replicas: agree=%v at %d: %v", vr.Agree, vr.FirstDifference, vr.Replicas)
	}
	cs, err := cl.NewConsumer(topic, client.Partitions(0), client.StartAt(client.Earliest()), client.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	got := map[int64]string{}
	for hw := pd.HighWatermark; ; {
		recs, err := cs.Poll(ctx)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		last := int64(-1)
		for _, r := range recs {
			got[r.Offset] = string(r.Value)
			last = r.Offset
		}
		if last+1 >= hw {
			break
		}
	}
	lost := 0
	for o, v := range acked {
		if got[o] != v {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged records not read back at their offsets", lost, len(acked))
	}
}
