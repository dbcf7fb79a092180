package netns

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// Client stands for the root namespace (the test process) in Partition's
// sides: a side holding Client cannot talk to the hosts of other sides.
const Client = -1

// lockPath serializes subnet choice and stale cleanup between processes.
const lockPath = "/run/lock/strata-netns.lock"

// subnetBase is the /16 the Nets' /24s are taken from. 10.213 is not
// Docker's (172.17/16) nor the machine's; New also skips any /24 already
// on an interface.
const subnetBase = "10.213"

var seq atomic.Uint32

// Net is one test network: n hosts, each in its own namespace, on one
// bridge that the root namespace reaches as their gateway.
type Net struct {
	prefix string // namespace names: prefix+"-sw", prefix+"-h<i>"
	rootIf string // the root end of the veth to the bridge
	subnet string // "10.213.k"
	n      int

	mu struct {
		sync.Mutex
		closed bool
	}
}

// New creates n hosts (n ≥ 1) and their bridge. On error nothing is left.
func New(ctx context.Context, n int) (*Net, error) {
	if n < 1 || n > 200 {
		return nil, fmt.Errorf("netns: %d hosts, want 1 to 200", n)
	}
	pid, s := os.Getpid(), seq.Add(1)%256
	nt := &Net{
		prefix: fmt.Sprintf("strata-%d-%d", pid, s),
		rootIf: fmt.Sprintf("sn%06x%02x", pid, s),
		n:      n,
	}
	if err := nt.setup(ctx); err != nil {
		return nil, errors.Join(err, nt.Close())
	}
	return nt, nil
}

func (nt *Net) setup(ctx context.Context) error {
	unlock, err := lock()
	if err != nil {
		return err
	}
	err = func() error {
		defer unlock()
		if err := removeStale(ctx); err != nil {
			return err
		}
		sub, err := freeSubnet(ctx)
		if err != nil {
			return err
		}
		nt.subnet = sub
		// Once the root veth has its address, the /24 is taken for
		// every later freeSubnet.
		return ipCmds(ctx,
			[]string{"netns", "add", nt.sw()},
			[]string{"link", "add", nt.rootIf, "type", "veth", "peer", "name", "root", "netns", nt.sw()},
			[]string{"addr", "add", nt.subnet + ".1/24", "dev", nt.rootIf},
			[]string{"link", "set", nt.rootIf, "up"},
		)
	}()
	if err != nil {
		return err
	}
	sw := nt.sw()
	if err := ipCmds(ctx,
		[]string{"-n", sw, "link", "add", "br0", "type", "bridge"},
		[]string{"-n", sw, "link", "set", "br0", "up"},
		[]string{"-n", sw, "link", "set", "root", "master", "br0"},
		[]string{"-n", sw, "link", "set", "root", "up"},
	); err != nil {
		return err
	}
	for i := range nt.n {
		h, port := nt.Namespace(i), fmt.Sprintf("h%d", i)
		if err := ipCmds(ctx,
			[]string{"netns", "add", h},
			[]string{"-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", h},
			[]string{"-n", sw, "link", "set", port, "master", "br0"},
			[]string{"-n", sw, "link", "set", port, "up"},
			[]string{"-n", h, "addr", "add", nt.IP(i) + "/24", "dev", "eth0"},
			[]string{"-n", h, "link", "set", "eth0", "up"},
			[]string{"-n", h, "link", "set", "lo", "up"},
			[]string{"-n", h, "route", "add", "default", "via", nt.subnet + ".1"},
		); err != nil {
			return err
		}
	}
	return nil
}

// N is the number of hosts.
func (nt *Net) N() int { return nt.n }

// IP is host i's address; IP(Client) is the root namespace's address on
// the bridge, the hosts' gateway.
func (nt *Net) IP(i int) string {
	if i == Client {
		return nt.subnet + ".1"
	}
	nt.check(i)
	return fmt.Sprintf("%s.%d", nt.subnet, 10+i)
}

// Namespace is the name of host i's network namespace (for ip netns exec).
func (nt *Net) Namespace(i int) string {
	nt.check(i)
	return fmt.Sprintf("%s-h%d", nt.prefix, i)
}

func (nt *Net) sw() string { return nt.prefix + "-sw" }

func (nt *Net) check(i int) {
	if i < 0 || i >= nt.n {
		panic(fmt.Sprintf("netns: host %d of %d", i, nt.n)) // a test's bug
	}
}

// Command returns a command running name inside host i's namespace. It is
// run by `ip netns exec`, which execs the program in place: the started
// process's pid is the program's own, so SIGKILL and SIGSTOP sent to
// cmd.Process reach it. Its working directory, files and mounts are the
// test's.
func (nt *Net) Command(ctx context.Context, i int, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", nt.Namespace(i), name}, args...)...)
}

// Close removes the hosts' namespaces, the bridge and the root veth. It
// is idempotent.
func (nt *Net) Close() error {
	nt.mu.Lock()
	defer nt.mu.Unlock()
	if nt.mu.closed {
		return nil
	}
	nt.mu.closed = true
	ctx := context.Background()
	var errs []error
	names, err := namespaces(ctx)
	if err != nil {
		return err
	}
	for _, name := range names {
		if strings.HasPrefix(name, nt.prefix+"-") {
			if err := ipCmds(ctx, []string{"netns", "del", name}); err != nil {
				errs = append(errs, err)
			}
		}
	}
	// Deleting the switch namespace destroys the veth with it (the kernel
	// does so asynchronously), unless a process holds that namespace;
	// remove our end explicitly, and a link gone meanwhile is no error.
	if linkExists(ctx, nt.rootIf) {
		if err := ipCmds(ctx, []string{"link", "del", nt.rootIf}); err != nil && linkExists(ctx, nt.rootIf) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ipCmds runs ip with each argument list in turn, stopping at the first
// failure.
func ipCmds(ctx context.Context, cmds ...[]string) error {
	for _, args := range cmds {
		if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("netns: ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
	}
	return nil
}

func linkExists(ctx context.Context, name string) bool {
	return exec.CommandContext(ctx, "ip", "link", "show", "dev", name).Run() == nil
}

// lock takes the machine-wide lock; the returned function releases it.
func lock() (func(), error) {
	if err := os.MkdirAll("/run/lock", 0o755); err != nil {
		return nil, fmt.Errorf("netns: %w", err)
	}
	f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("netns: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("netns: lock %s: %w", lockPath, err)
	}
	return func() { f.Close() }, nil // closing the file releases the lock
}

// namespaces lists the named network namespaces.
func namespaces(ctx context.Context) ([]string, error) {
	out, err := exec.CommandContext(ctx, "ip", "netns", "list").Output()
	if err != nil {
		return nil, fmt.Errorf("netns: ip netns list: %w", err)
	}
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 0 {
			names = append(names, f[0]) // "name (id: 3)"
		}
	}
	return names, nil
}

// removeStale deletes the namespaces and root veths of processes that no
// longer run. (Processes still running inside a stale namespace are left
// alone: they are not ours to end.)
func removeStale(ctx context.Context) error {
	names, err := namespaces(ctx)
	if err != nil {
		return err
	}
	for _, name := range names {
		f := strings.SplitN(name, "-", 3)
		if len(f) != 3 || f[0] != "strata" {
			continue
		}
		if pid, err := strconv.Atoi(f[1]); err == nil && !alive(pid) {
			if err := ipCmds(ctx, []string{"netns", "del", name}); err != nil {
				return err
			}
		}
	}
	out, err := exec.CommandContext(ctx, "ip", "-o", "link", "show").Output()
	if err != nil {
		return fmt.Errorf("netns: ip link show: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		// "12: sn00abcd01@if3: <...>"
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if len(name) != 10 || !strings.HasPrefix(name, "sn") {
			continue
		}
		if pid, err := strconv.ParseInt(name[2:8], 16, 32); err == nil && !alive(int(pid)) {
			// A veth pair goes at once: its peer, listed later, is gone.
			if err := ipCmds(ctx, []string{"link", "del", name}); err != nil && linkExists(ctx, name) {
				return err
			}
		}
	}
	return nil
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// freeSubnet returns the first 10.213.k (as "10.213.k") with no address
// of the root namespace in it.
func freeSubnet(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "ip", "-4", "-o", "addr", "show").Output()
	if err != nil {
		return "", fmt.Errorf("netns: ip addr show: %w", err)
	}
	routes, err := exec.CommandContext(ctx, "ip", "-4", "route", "show", "table", "all").Output()
	if err != nil {
		return "", fmt.Errorf("netns: ip route show: %w", err)
	}
	used := string(out) + string(routes)
	for k := range 256 {
		sub := fmt.Sprintf("%s.%d", subnetBase, k)
		if !strings.Contains(used, " "+sub+".") && !strings.Contains(used, "\n"+sub+".") && !strings.HasPrefix(used, sub+".") {
			return sub, nil
		}
	}
	return "", fmt.Errorf("netns: no free /24 in %s.0.0/16", subnetBase)
}
