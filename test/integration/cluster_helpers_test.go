package integration

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stratalog/strata/pkg/client"
	"github.com/stratalog/strata/pkg/record"
	"github.com/stratalog/strata/pkg/segment"
)

// node is one broker of a test cluster: fixed addresses and data dir, so
// a restarted broker is the same Raft member, and the current process.
type node struct {
	id                      uint32
	dir                     string
	logPath                 string
	api, http, raft, gossip string
	proc                    *brokerProc // nil while down
}

// clusterSecret is every test cluster's --cluster-secret.
const clusterSecret = "integration-test-cluster-secret-0123456789"

// testCluster is a cluster of real strata-broker processes on loopback.
type testCluster struct {
	t        *testing.T
	nodes    []*node // nodes[i].id == i+1
	logLevel string
}

// freePort returns a loopback port that was free for TCP and UDP a moment
// ago (gossip uses both). It picks from below Linux's ephemeral range
// (32768-60999), where the kernel does not hand out ports on its own: a
// port the kernel chose (":0") can be given, while its broker is down, to
// any process's outgoing connection, and the restart fails ("address
// already in use"; seen with a broker down 30 s on a busy machine).
// Another test may still take it before the broker binds it; that fails
// the broker's start loudly rather than flakily.
func freePort(t *testing.T) string {
	t.Helper()
	for range 100 {
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		ln.Close()
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			continue
		}
		pc.Close()
		return addr
	}
	t.Fatal("no free TCP+UDP port on 127.0.0.1 in 100 tries")
	return ""
}

// newTestCluster chooses addresses and data dirs for n brokers and starts
// them all, each with --bootstrap-expect n and --join naming every gossip
// address.
func newTestCluster(t *testing.T, n int) *testCluster {
	t.Helper()
	c := &testCluster{t: t, logLevel: "info"}
	if lv := os.Getenv("STRATA_IT_LOG_LEVEL"); lv != "" {
		c.logLevel = lv
	}
	base := t.TempDir()
	logs := base
	if d := os.Getenv("STRATA_IT_LOG_DIR"); d != "" {
		// Broker logs kept after the test, for a run to be studied.
		logs = filepath.Join(d, strings.ReplaceAll(t.Name(), "/", "_"))
		if err := os.MkdirAll(logs, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	used := map[string]bool{}
	port := func() string {
		for {
			p := freePort(t)
			if !used[p] {
				used[p] = true
				return p
			}
		}
	}
	for i := range n {
		nd := &node{id: uint32(i + 1), dir: filepath.Join(base, fmt.Sprintf("node%d", i+1)), logPath: filepath.Join(logs, fmt.Sprintf("node%d.log", i+1))}
		nd.api, nd.http, nd.raft, nd.gossip = port(), port(), port(), port()
		c.nodes = append(c.nodes, nd)
	}
	t.Cleanup(func() {
		if t.Failed() {
			c.dumpLogs()
		}
	})
	for _, nd := range c.nodes {
		c.start(nd)
	}
	return c
}

func (c *testCluster) start(nd *node) {
	c.t.Helper()
	if nd.proc != nil {
		c.t.Fatalf("node %d is already running", nd.id)
	}
	lf, err := os.OpenFile(nd.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	defer lf.Close() // the child has its own copy of the descriptor
	fmt.Fprintf(lf, "=== test: starting node %d at %s\n", nd.id, time.Now().Format(time.RFC3339Nano))
	var gossips []string
	for _, o := range c.nodes {
		gossips = append(gossips, o.gossip)
	}
	nd.proc = startBrokerLog(c.t, nd.dir, lf,
		"--node-id", fmt.Sprint(nd.id),
		"--api-addr", nd.api, "--http-addr", nd.http, "--raft-addr", nd.raft, "--gossip-addr", nd.gossip,
		"--bootstrap-expect", fmt.Sprint(len(c.nodes)), "--join", strings.Join(gossips, ","),
		"--fsync", "always", "--log-level", c.logLevel, "--cluster-secret", clusterSecret)
	if nd.proc.APIAddr != nd.api {
		c.t.Fatalf("node %d listens on %s, asked for %s", nd.id, nd.proc.APIAddr, nd.api)
	}
}

// kill9 sends SIGKILL to the node's process (one this test started) and
// waits for it to exit.
func (c *testCluster) kill9(nd *node) {
	c.t.Helper()
	nd.proc.kill(c.t)
	nd.proc = nil
}

// stopAll stops every running broker with SIGTERM, all at once, and
// checks that each exits cleanly within 30 s.
func (c *testCluster) stopAll() {
	c.t.Helper()
	for _, nd := range c.nodes {
		if nd.proc != nil {
			if err := nd.proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				c.t.Errorf("SIGTERM node %d: %v", nd.id, err)
			}
		}
	}
	deadline := time.After(30 * time.Second)
	for _, nd := range c.nodes {
		if nd.proc == nil {
			continue
		}
		select {
		case <-nd.proc.waited:
			if code := nd.proc.cmd.ProcessState.ExitCode(); code != 0 {
				c.t.Errorf("node %d exited with %d after SIGTERM", nd.id, code)
			}
		case <-deadline:
			c.t.Fatalf("node %d did not stop within 30s of SIGTERM", nd.id)
		}
		nd.proc = nil
	}
}

func (c *testCluster) node(id uint32) *node {
	if id < 1 || int(id) > len(c.nodes) {
		return nil
	}
	return c.nodes[id-1]
}

func (c *testCluster) apiAddrs() []string {
	var out []string
	for _, nd := range c.nodes {
		out = append(out, nd.api)
	}
	return out
}

// dumpLogs prints the last lines of every broker's log.
func (c *testCluster) dumpLogs() {
	for _, nd := range c.nodes {
		b, err := os.ReadFile(nd.logPath)
		if err != nil {
			continue
		}
		var lines []string
		for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
			if !strings.HasPrefix(l, "\t") && !strings.HasPrefix(l, "github.com/") {
				lines = append(lines, l) // stack traces of error logs left out
			}
		}
		if len(lines) > 60 {
			lines = lines[len(lines)-60:]
		}
		c.t.Logf("---- last %d lines of node %d's log (%s) ----\n%s", len(lines), nd.id, nd.logPath, strings.Join(lines, "\n"))
	}
}

// errorLines returns the lines every broker logged at error level (the
// console format: time, tab, level, tab): routine operations, kill -9 of
// a peer and its restart included, must log none (docs/operations.md,
// "Logs").
func (c *testCluster) errorLines() []string {
	var out []string
	for _, nd := range c.nodes {
		b, err := os.ReadFile(nd.logPath)
		if err != nil {
			c.t.Errorf("node %d's log: %v", nd.id, err)
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.SplitN(l, "\t", 3); len(f) == 3 && f[1] == "error" {
				out = append(out, fmt.Sprintf("node %d: %s", nd.id, l))
			}
		}
	}
	return out
}

// waitFor polls cond every 100 ms until it returns nil or timeout passes,
// and returns the last error.
func waitFor(ctx context.Context, timeout time.Duration, cond func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		err := cond(cctx)
		ccancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not within %s: %w", timeout, err)
		case <-tick.C:
		}
	}
}

// clusterReady: every broker, asked itself, names a controller and sees
// all n brokers alive. (Gossip views converge separately: one broker may
// report three alive while the controller still sees two and refuses a
// topic with RF 3.)
func (c *testCluster) clusterReady(ctx context.Context) error {
	for _, nd := range c.nodes {
		if err := nodeReady(ctx, nd.api, len(c.nodes)); err != nil {
			return fmt.Errorf("node %d: %w", nd.id, err)
		}
	}
	return nil
}

func nodeReady(ctx context.Context, addr string, n int) error {
	cl, err := client.New([]string{addr}, client.RetryTimeout(0)) // one attempt, at addr
	if err != nil {
		return err
	}
	defer cl.Close()
	md, err := cl.Admin().Metadata(ctx)
	if err != nil {
		return err
	}
	if md.ControllerID == 0 {
		return fmt.Errorf("no controller")
	}
	alive := 0
	for _, b := range md.Brokers {
		if b.State == "alive" {
			alive++
		}
	}
	if alive != n {
		return fmt.Errorf("%d of %d brokers alive: %v", alive, n, md.Brokers)
	}
	return nil
}

// topicHealthy: every partition has a leader and all replicas in sync.
func topicHealthy(ctx context.Context, adm *client.Admin, topic string) (client.TopicDetail, error) {
	d, err := adm.DescribeTopic(ctx, topic)
	if err != nil {
		return client.TopicDetail{}, err
	}
	for _, p := range d.Partitions {
		if p.Leader == 0 {
			return d, fmt.Errorf("partition %d has no leader", p.Partition)
		}
		if len(p.InSyncReplicas) != len(p.Replicas) {
			return d, fmt.Errorf("partition %d: in sync %v of replicas %v", p.Partition, p.InSyncReplicas, p.Replicas)
		}
	}
	return d, nil
}

// diskRecord is one record as stored in a replica's segment log.
type diskRecord struct {
	offset     int64
	key, value []byte
	headers    []record.Header
	ts         int64
}

// readReplicaLog opens a stopped broker's log of one partition and returns
// the records below upTo, the raw batch bytes read, and the log's end.
func readReplicaLog(dataDir, topic string, p int32, upTo int64) (recs []diskRecord, raw []byte, next int64, err error) {
	dirs, err := filepath.Glob(filepath.Join(dataDir, "topics", topic+"-*", fmt.Sprint(p)))
	if err != nil {
		return nil, nil, 0, err
	}
	if len(dirs) != 1 {
		return nil, nil, 0, fmt.Errorf("%s: want one log dir for %s/%d, found %v", dataDir, topic, p, dirs)
	}
	l, err := segment.Open(dirs[0], segment.DefaultOptions())
	if err != nil {
		return nil, nil, 0, err
	}
	defer l.Close()
	if rep := l.RecoveryReport(); rep != nil {
		return nil, nil, 0, fmt.Errorf("%s: recovery after a clean stop cut the log: %v", dirs[0], rep)
	}
	next = l.NextOffset()
	end := min(upTo, next)
	for off := l.StartOffset(); off < end; {
		b, err := l.Read(off, end, 4<<20)
		if err != nil {
			return nil, nil, next, fmt.Errorf("%s: read at %d: %w", dirs[0], off, err)
		}
		if len(b) == 0 {
			return nil, nil, next, fmt.Errorf("%s: read at %d (end %d) returned nothing", dirs[0], off, end)
		}
		raw = append(raw, b...)
		for len(b) > 0 {
			batch, h, rest, err := record.Next(b)
			if err != nil {
				return nil, nil, next, fmt.Errorf("%s: batch near %d: %w", dirs[0], off, err)
			}
			b = rest
			if !h.IsControl() {
				rs, err := record.Decode(batch, record.DecodeOptions{})
				if err != nil {
					return nil, nil, next, fmt.Errorf("%s: batch at %d: %w", dirs[0], h.BaseOffset, err)
				}
				for _, r := range rs {
					if int64(r.Offset) >= off && int64(r.Offset) < end {
						recs = append(recs, diskRecord{int64(r.Offset), r.Key, r.Value, r.Headers, r.Timestamp.UnixMilli()})
					}
				}
			}
			off = max(off, h.NextOffset())
		}
	}
	return recs, raw, next, nil
}

// sameRecords reports the first difference between two replicas' records.
func sameRecords(a, b []diskRecord) error {
	for i := range min(len(a), len(b)) {
		x, y := a[i], b[i]
		if x.offset != y.offset || !bytes.Equal(x.key, y.key) || !bytes.Equal(x.value, y.value) || x.ts != y.ts ||
			!slices.EqualFunc(x.headers, y.headers, func(h, g record.Header) bool { return h.Key == g.Key && bytes.Equal(h.Value, g.Value) }) {
			return fmt.Errorf("record #%d differs: offset %d key %q value %q vs offset %d key %q value %q", i, x.offset, x.key, x.value, y.offset, y.key, y.value)
		}
	}
	if len(a) != len(b) {
		return fmt.Errorf("%d records vs %d", len(a), len(b))
	}
	return nil
}
