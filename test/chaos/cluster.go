package chaos

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/stratalog/strata/pkg/client"
	"github.com/stratalog/strata/test/chaos/internal/chaostest"
)

// Cluster is a cluster of real strata-broker processes on loopback, each
// with fixed ports and its own data dir, so a broker killed and started
// again is the same Raft member. Every method is called from one
// goroutine (the run's), except Running and Addrs, which any goroutine may
// call.
type Cluster struct {
	bin      string // the strata-broker binary
	base     string // data dirs and logs live here
	expect   int    // --bootstrap-expect of the founding brokers
	logLevel string
	// DumpDir, when set, receives the goroutines of every broker the
	// first time a broker takes over 5 s to answer Ready's Metadata call,
	// taken while the call still waits.
	DumpDir string
	dumped  atomic.Bool
	// command builds a broker's command line (nil: bin with args, on
	// loopback); the network scenario's runs it in a namespace.
	command func(nd *Node, args []string) *exec.Cmd
	cleanup func() error // after Close has stopped every process; may be nil
	mu      struct {
		sync.Mutex
		nodes []*Node // nodes[i].ID == i+1
		used  map[string]bool
	}
}

// Node is one broker of a Cluster.
type Node struct {
	ID                      uint32
	Dir, LogPath            string
	API, HTTP, Raft, Gossip string
	proc                    *proc // nil while down; guarded by Cluster.mu
	paused                  bool
	removed                 bool // decommissioned and stopped
}

func (n *Node) String() string { return fmt.Sprintf("node%d", n.ID) }

// proc is one running strata-broker process.
type proc struct {
	cmd    *exec.Cmd
	waited chan struct{}
}

var listenLine = regexp.MustCompile(`listening: api=(\S+) http=`)

// BuildBroker builds cmd/broker into dir and returns the binary's path.
func BuildBroker(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "strata-broker")
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/stratalog/strata/cmd/broker").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build cmd/broker: %v\n%s", err, out)
	}
	return bin, nil
}

// NewCluster chooses ports and data dirs under base for n founding
// brokers and starts them (--bootstrap-expect n, --join naming all).
func NewCluster(bin, base string, n int) (*Cluster, error) {
	c := &Cluster{bin: bin, base: base, expect: n, logLevel: "info"}
	c.mu.used = map[string]bool{}
	for range n {
		if _, err := c.newNode(); err != nil {
			return nil, err
		}
	}
	for _, nd := range c.Nodes() {
		if err := c.Start(nd); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

func (c *Cluster) newNode() (*Node, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := uint32(len(c.mu.nodes) + 1)
	nd := &Node{ID: id, Dir: filepath.Join(c.base, fmt.Sprintf("node%d", id)), LogPath: filepath.Join(c.base, fmt.Sprintf("node%d.log", id))}
	for _, p := range []*string{&nd.API, &nd.HTTP, &nd.Raft, &nd.Gossip} {
		addr, err := freePort(c.mu.used)
		if err != nil {
			return nil, err
		}
		*p = addr
	}
	c.mu.nodes = append(c.mu.nodes, nd)
	return nd, nil
}

// freePort returns a loopback port that was free for TCP and UDP a moment
// ago (gossip uses both), below Linux's ephemeral range, so that a port
// of a broker that is down is not handed to some outgoing connection
// meanwhile (test/integration does the same, for the same reason).
func freePort(used map[string]bool) (string, error) {
	addr, err := chaostest.FreeAddr(used)
	if err != nil {
		return "", fmt.Errorf("chaos: %w", err)
	}
	return addr, nil
}

// Nodes returns every node ever added, removed ones included.
func (c *Cluster) Nodes() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Node(nil), c.mu.nodes...)
}

// Members returns the nodes that are part of the cluster (not removed).
func (c *Cluster) Members() []*Node {
	var out []*Node
	for _, nd := range c.Nodes() {
		if !nd.removed {
			out = append(out, nd)
		}
	}
	return out
}

// Node returns the node with the id, or nil.
func (c *Cluster) Node(id uint32) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	if id < 1 || int(id) > len(c.mu.nodes) {
		return nil
	}
	return c.mu.nodes[id-1]
}

// Addrs is every member's API address (clients are given them all).
func (c *Cluster) Addrs() []string {
	var out []string
	for _, nd := range c.Members() {
		out = append(out, nd.API)
	}
	return out
}

// Running reports whether the node's process is up (paused counts).
func (c *Cluster) Running(nd *Node) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return nd.proc != nil
}

// Start starts the node's process and waits (up to 30 s) for it to
// listen. A node added after formation joins without --bootstrap-expect.
func (c *Cluster) Start(nd *Node) error {
	c.mu.Lock()
	if nd.proc != nil {
		c.mu.Unlock()
		return fmt.Errorf("%s is already running", nd)
	}
	var gossips []string
	for _, o := range c.mu.nodes {
		if !o.removed {
			gossips = append(gossips, o.Gossip)
		}
	}
	c.mu.Unlock()
	lf, err := os.OpenFile(nd.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer lf.Close() // the child has its own copy
	fmt.Fprintf(lf, "=== chaos: starting %s at %s\n", nd, time.Now().Format(time.RFC3339Nano))
	args := []string{"--node-id", fmt.Sprint(nd.ID), "--data-dir", nd.Dir,
		"--api-addr", nd.API, "--http-addr", nd.HTTP, "--raft-addr", nd.Raft, "--gossip-addr", nd.Gossip,
		"--join", strings.Join(gossips, ","), "--fsync", "always", "--log-level", c.logLevel,
		"--cluster-secret", chaostest.ClusterSecret}
	if int(nd.ID) <= c.expect {
		args = append(args, "--bootstrap-expect", fmt.Sprint(c.expect))
	}
	cmd := exec.Command(c.bin, args...)
	if c.command != nil {
		cmd = c.command(nd, args)
	}
	cmd.Stderr = lf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	p := &proc{cmd: cmd, waited: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := listenLine.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
	}()
	go func() { cmd.Wait(); close(p.waited) }()
	c.mu.Lock()
	nd.proc, nd.paused = p, false
	c.mu.Unlock()
	select {
	case a := <-addr:
		if a != nd.API {
			return fmt.Errorf("%s listens on %s, asked for %s", nd, a, nd.API)
		}
		return nil
	case <-p.waited:
		c.mu.Lock()
		nd.proc = nil
		c.mu.Unlock()
		return fmt.Errorf("%s exited before listening: %v (log %s)", nd, cmd.ProcessState, nd.LogPath)
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s did not report its address within 30s (log %s)", nd, nd.LogPath)
	}
}

// Kill sends SIGKILL (a paused process dies too) and waits for the exit.
func (c *Cluster) Kill(nd *Node) error {
	c.mu.Lock()
	p := nd.proc
	nd.proc, nd.paused = nil, false
	c.mu.Unlock()
	if p == nil {
		return fmt.Errorf("kill %s: not running", nd)
	}
	select {
	case <-p.waited:
		return fmt.Errorf("kill %s: it had exited by itself: %v", nd, p.cmd.ProcessState)
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill %s: %w", nd, err)
	}
	<-p.waited
	return nil
}

// Signal sends SIGSTOP or SIGCONT.
func (c *Cluster) Signal(nd *Node, sig syscall.Signal) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if nd.proc == nil {
		return fmt.Errorf("signal %s: not running", nd)
	}
	nd.paused = sig == syscall.SIGSTOP
	return nd.proc.cmd.Process.Signal(sig)
}

// Stop sends SIGTERM and waits up to 30 s for a clean exit.
func (c *Cluster) Stop(nd *Node) error {
	c.mu.Lock()
	p := nd.proc
	c.mu.Unlock()
	if p == nil {
		return fmt.Errorf("stop %s: not running", nd)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-p.waited:
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s did not stop within 30s of SIGTERM", nd)
	}
	c.mu.Lock()
	nd.proc = nil
	c.mu.Unlock()
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		return fmt.Errorf("%s exited with %d after SIGTERM", nd, code)
	}
	return nil
}

// AddNode starts a new broker that joins the running cluster.
func (c *Cluster) AddNode() (*Node, error) {
	nd, err := c.newNode()
	if err != nil {
		return nil, err
	}
	return nd, c.Start(nd)
}

// MarkRemoved takes a decommissioned, stopped node out of Members.
func (c *Cluster) MarkRemoved(nd *Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	nd.removed = true
}

// Close kills every process still running (continuing paused ones).
func (c *Cluster) Close() {
	for _, nd := range c.Nodes() {
		c.mu.Lock()
		p := nd.proc
		nd.proc = nil
		c.mu.Unlock()
		if p == nil {
			continue
		}
		p.cmd.Process.Signal(syscall.SIGCONT)
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.waited
	}
	if c.cleanup != nil {
		if err := c.cleanup(); err != nil {
			fmt.Fprintf(os.Stderr, "chaos: cluster cleanup: %v\n", err)
		}
		c.cleanup = nil
	}
}

// ErrorLines returns the lines the brokers logged at error level.
func (c *Cluster) ErrorLines() []string {
	var out []string
	for _, nd := range c.Nodes() {
		f, err := os.Open(nd.LogPath)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if fs := strings.SplitN(sc.Text(), "\t", 3); len(fs) == 3 && fs[1] == "error" {
				out = append(out, fmt.Sprintf("%s: %s", nd, sc.Text()))
			}
		}
		f.Close()
	}
	return out
}

// Ready returns nil once every member that runs and is not paused names
// a controller and sees every running member alive.
func (c *Cluster) Ready(ctx context.Context) error {
	want := 0
	var up []*Node
	for _, nd := range c.Members() {
		if c.Running(nd) {
			want++
			up = append(up, nd)
		}
	}
	for _, nd := range up {
		cl, err := client.New([]string{nd.API}, client.RetryTimeout(0))
		if err != nil {
			return err
		}
		slow := time.AfterFunc(5*time.Second, func() {
			if c.DumpDir != "" && c.dumped.CompareAndSwap(false, true) {
				c.DumpGoroutines(c.DumpDir)
			}
		})
		md, err := cl.Admin().Metadata(ctx)
		slow.Stop()
		cl.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", nd, err)
		}
		if md.ControllerID == 0 {
			return fmt.Errorf("%s: no controller", nd)
		}
		alive := 0
		for _, b := range md.Brokers {
			if b.State == "alive" {
				alive++
			}
		}
		if alive != want {
			return fmt.Errorf("%s: %d of %d brokers alive: %v", nd, alive, want, md.Brokers)
		}
	}
	return nil
}

// DumpGoroutines saves every running broker's goroutine stacks (its
// /debug/pprof endpoint) into dir, for a broker that stops answering.
func (c *Cluster) DumpGoroutines(dir string) []string {
	var saved []string
	for _, nd := range c.Members() {
		if !c.Running(nd) {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+nd.HTTP+"/debug/pprof/goroutine?debug=2", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			path := filepath.Join(dir, fmt.Sprintf("%s-goroutines-%s.txt", nd, time.Now().Format("150405")))
			if f, ferr := os.Create(path); ferr == nil {
				io.Copy(f, resp.Body)
				f.Close()
				saved = append(saved, path)
			}
			resp.Body.Close()
		}
		cancel()
	}
	return saved
}
