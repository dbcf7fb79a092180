package chaos

// The network scenario: the brokers run each in its own network namespace
// (netns), on its own size-limited volume (diskfault) and with its own
// wall-clock offset file and time namespace (clockskew), so that network
// partitions, full disks and clock jumps mix with kills and pauses under
// the same workloads and checkers as the other scenarios.

import (
	"context"
	"errors"
	"fmt"
	"github.com/stratalog/strata/pkg/client"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/stratalog/strata/test/chaos/clockskew"
	"github.com/stratalog/strata/test/chaos/diskfault"
	"github.com/stratalog/strata/test/chaos/netns"
)

// Each broker binds its namespace's IP: the ports are the same on every
// host.
const netAPIPort, netHTTPPort, netRaftPort, netGossipPort = "9290", "9291", "9292", "9293"

// volumeLimit is each broker's volume size while its disk is not full.
// A tmpfs takes memory only for what is written; a disk-full fault
// shrinks the volume to what is used before it fills the rest, so the
// filler is small.
const volumeLimit = 8 << 30

// netEnv is what a network scenario's cluster runs in; host i is node i+1.
type netEnv struct {
	nt     *netns.Net
	vols   []*diskfault.Volume
	clocks []*clockskew.File
}

func (e *netEnv) close() error {
	var errs []error
	for _, v := range e.vols {
		errs = append(errs, v.Close())
	}
	if e.nt != nil {
		errs = append(errs, e.nt.Close())
	}
	return errors.Join(errs...)
}

// retentionFor is retention.ms of the network scenario's main topic: an
// hour, or twice the run if that is longer, so that no record of the run
// expires by the machine's clock and every one must still be there at the
// end. A clock jump goes beyond it.
func retentionFor(sc Scenario) time.Duration {
	return max(time.Hour, 2*sc.Duration)
}

// mainTopicConfig is the main topic's config at creation: in the network
// scenario, time retention (clock jumps of one broker beyond retention.ms
// must delete nothing, docs/operations.md "Clocks") and a timestamp window
// wide enough that a leader whose clock runs behind still takes the
// producers' records, and 1 MiB segments (until the admin stream alters
// them) so that retention has closed segments to consider from the start.
func mainTopicConfig(sc Scenario) map[string]string {
	if !sc.Network {
		return nil
	}
	ret := retentionFor(sc)
	return map[string]string{
		"retention.ms":                   fmt.Sprint(ret.Milliseconds()),
		"message.timestamp.after.max.ms": fmt.Sprint(3 * ret.Milliseconds()),
		"segment.bytes":                  fmt.Sprint(1 << 20),
	}
}

// newNetCluster starts n founding brokers, broker i in namespace host
// i-1, its data dir on a volume of its own, its wall clock offset by the
// file base/nodeI.clock, and its monotonic and boot clocks 10 days times
// i ahead of the machine's (a time namespace: no two brokers' monotonic
// clocks agree). The cluster's Close removes all of it.
func newNetCluster(ctx context.Context, bin, base string, n int) (c *Cluster, env *netEnv, err error) {
	env = &netEnv{}
	defer func() {
		if err != nil {
			if c != nil {
				c.Close()
			}
			err = errors.Join(err, env.close())
		}
	}()
	if env.nt, err = netns.New(ctx, n); err != nil {
		return nil, nil, err
	}
	c = &Cluster{bin: bin, base: base, expect: n, logLevel: "info"}
	c.mu.used = map[string]bool{}
	for i := range n {
		id := uint32(i + 1)
		nd := &Node{ID: id, Dir: filepath.Join(base, fmt.Sprintf("node%d", id)), LogPath: filepath.Join(base, fmt.Sprintf("node%d.log", id))}
		ip := env.nt.IP(i)
		nd.API, nd.HTTP = net.JoinHostPort(ip, netAPIPort), net.JoinHostPort(ip, netHTTPPort)
		nd.Raft, nd.Gossip = net.JoinHostPort(ip, netRaftPort), net.JoinHostPort(ip, netGossipPort)
		v, err := diskfault.Mount(nd.Dir, volumeLimit)
		if err != nil {
			return nil, nil, err
		}
		env.vols = append(env.vols, v)
		f, err := clockskew.NewFile(filepath.Join(base, fmt.Sprintf("node%d.clock", id)))
		if err != nil {
			return nil, nil, err
		}
		env.clocks = append(env.clocks, f)
		c.mu.nodes = append(c.mu.nodes, nd)
	}
	c.command = func(nd *Node, args []string) *exec.Cmd {
		i := int(nd.ID) - 1
		args = append(args, "--debug-clock-offset-file", env.clocks[i].Path(), "--retention-check-interval", "1s")
		mono := time.Duration(nd.ID) * 240 * time.Hour
		name, args := clockskew.Wrap(mono, mono, c.bin, args...)
		return env.nt.Command(context.Background(), i, name, args...)
	}
	c.cleanup = func() error { return env.close() }
	for _, nd := range c.Nodes() {
		if err := c.Start(nd); err != nil {
			return c, env, err
		}
	}
	return c, env, nil
}

// netFault builds a fault of the network scenario's kinds on target nd
// (a running member): rng is the step's own, so the sides, the bridge and
// the clock's offset follow from the seed.
func (r *run) netFault(s Step, nd *Node, rng *rand.Rand) (Fault, error) {
	env := r.env
	if env == nil {
		return nil, fmt.Errorf("fault kind %q needs the network scenario's cluster", s.Kind)
	}
	host := int(nd.ID) - 1
	var others []int
	for _, m := range r.c.Members() {
		if m != nd {
			others = append(others, int(m.ID)-1)
		}
	}
	rng.Shuffle(len(others), func(a, b int) { others[a], others[b] = others[b], others[a] })
	switch s.Kind {
	case "isolate":
		// The target alone; the test's clients reach every broker.
		return r.cut(env.nt.Isolation(host)), nil
	case "partition":
		// The target in the minority, the rest in the majority, and the
		// test's clients on one side: with the minority they can reach
		// only brokers that cannot commit.
		minority, majority := []int{host}, others
		if rng.IntN(2) == 0 {
			minority = append(minority, netns.Client)
		} else {
			majority = append(slices.Clone(majority), netns.Client)
		}
		return r.cut(&netns.Cut{Net: env.nt, Sides: [][]int{minority, majority}, Via: -1}), nil
	case "bridge":
		// Half of the time the target is the bridge (it sees both sides,
		// neither side sees the other); else the target is on one side.
		if len(others) < 2 {
			return nil, errors.New("a bridge needs three brokers")
		}
		if rng.IntN(2) == 0 {
			return r.cut(&netns.Cut{Net: env.nt, Sides: [][]int{{others[0]}, others[1:]}, Via: host}), nil
		}
		return r.cut(&netns.Cut{Net: env.nt, Sides: [][]int{{host}, others[1:]}, Via: others[0]}), nil
	case "disk-full":
		return &fullDisk{Full: diskfault.Full{Volume: env.vols[host], Name: nd.String()}, c: r.c, nd: nd}, nil
	case "clock-skew":
		off := retentionFor(r.sc) + time.Duration(1+rng.IntN(30))*time.Minute
		if rng.IntN(2) == 0 {
			off = -off
		}
		return &clockJump{Jump: clockskew.Jump{File: env.clocks[host], Offset: off, Name: nd.String()}}, nil
	}
	return nil, fmt.Errorf("unknown fault kind %q", s.Kind)
}

// cut names a partition's sides by node rather than by host index.
func (r *run) cut(c *netns.Cut) Fault { return &netCut{Cut: c} }

type netCut struct{ *netns.Cut }

func (c *netCut) Target() string {
	name := func(h int) string {
		if h == netns.Client {
			return "client"
		}
		return fmt.Sprintf("node%d", h+1)
	}
	var sides []string
	for _, s := range c.Sides {
		var hs []string
		for _, h := range s {
			hs = append(hs, name(h))
		}
		sides = append(sides, "{"+strings.Join(hs, ",")+"}")
	}
	t := strings.Join(sides, " | ")
	if c.Via >= 0 {
		t += " via " + name(c.Via)
	}
	return t
}

// fullDisk fills a broker's volume. Filling an 8 GiB tmpfs would take
// 8 GiB of memory: the volume is first shrunk to what the broker uses
// (plus a little, as the broker writes meanwhile), then filled, and grown
// back at Heal.
//
// A broker that exits while its disk is full is started again at Heal, as
// its supervisor would (systemd's Restart=on-failure), and the run counts
// it (Result.Crashes, "crashed=" in the summary): hashicorp/raft panics
// when it cannot store a term or a vote (docs/operations.md, "Fault
// suite", what it found).
type fullDisk struct {
	diskfault.Full
	c       *Cluster
	nd      *Node
	did     string
	crashed bool
}

func (f *fullDisk) Inject(ctx context.Context) error {
	v := f.Volume
	var err error
	for margin := int64(1 << 20); margin <= 64<<20; margin *= 4 {
		free, ferr := v.Free()
		if ferr != nil {
			return ferr
		}
		used := v.Size() - free
		if err = v.Resize(used + margin); err == nil {
			f.did = fmt.Sprintf("volume of %d MiB in use shrunk to %d MiB and filled", used>>20, (used+margin)>>20)
			return f.Full.Inject(ctx)
		}
		if !errors.Is(err, syscall.EINVAL) {
			return err
		}
	}
	return err
}

func (f *fullDisk) Heal(ctx context.Context) error {
	if err := errors.Join(f.Full.Heal(ctx), f.Volume.Resize(volumeLimit)); err != nil {
		return err
	}
	if !f.c.exited(f.nd) {
		return nil
	}
	f.crashed = true
	f.did += "; the broker exited meanwhile (" + lastPanic(f.nd.LogPath) + "), started again"
	f.c.mu.Lock()
	f.nd.proc = nil
	f.c.mu.Unlock()
	return f.c.Start(f.nd)
}

// Crashed reports whether the broker exited while its disk was full.
func (f *fullDisk) Crashed() bool { return f.crashed }

// exited reports whether nd's process has exited by itself.
func (c *Cluster) exited(nd *Node) bool {
	c.mu.Lock()
	p := nd.proc
	c.mu.Unlock()
	if p == nil {
		return false
	}
	select {
	case <-p.waited:
		return true
	default:
		return false
	}
}

// lastPanic is the last "panic:" line of a broker's log, or "no panic
// logged".
func lastPanic(logPath string) string {
	b, err := os.ReadFile(logPath)
	if err != nil {
		return err.Error()
	}
	last := "no panic logged"
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "panic: ") {
			last = l
		}
	}
	return last
}

func (f *fullDisk) Detail() string { return f.did }

// clockJump moves one broker's wall clock beyond the main topic's
// retention.ms, ahead or behind, and back at Heal.
type clockJump struct{ clockskew.Jump }

func (j *clockJump) Detail() string { return fmt.Sprintf("wall clock %+v", j.Offset) }

// checkRetention is the network scenario's own checker, after each clock
// jump and at the end: no record of the main topic is older than its
// retention.ms by the machine's clock, so every partition must still
// start at offset 0 (EARLIEST, from its leader). A broker whose clock
// jumped beyond retention.ms must not have deleted anything.
func (r *run) checkRetention(ctx context.Context, after string) error {
	adm := r.checkCl.Admin()
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	d, err := adm.DescribeTopic(cctx, mainTopic)
	if err != nil {
		return err
	}
	for _, p := range d.Partitions {
		res, err := adm.ListOffsets(cctx, mainTopic, p.Partition, client.OffsetSpecEarliest, time.Time{})
		if err != nil {
			return err
		}
		if res.Offset != 0 {
			return &counterexample{"retention", fmt.Sprintf("%s/%d starts at offset %d %s, though none of its records is older than retention.ms (%s) by the machine's clock",
				mainTopic, p.Partition, res.Offset, after, retentionFor(r.sc))}
		}
	}
	return nil
}
