package netns

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// helperEnv, when set, makes the test binary a helper process instead:
// "echo <addr>" serves TCP and UDP echo on addr; "probe <addr>" tries one
// TCP and one UDP exchange with addr and prints the outcome of each.
const helperEnv = "STRATA_NETNS_HELPER"

// exchangeTimeout bounds each probe's connect, send and receive: a cut
// link must fail the probe within it.
const exchangeTimeout = time.Second

func TestMain(m *testing.M) {
	if h := os.Getenv(helperEnv); h != "" {
		mode, addr, _ := strings.Cut(h, " ")
		switch mode {
		case "echo":
			echo(addr)
		case "probe":
			fmt.Printf("tcp %s\n", errText(probeTCP(addr)))
			fmt.Printf("udp %s\n", errText(probeUDP(addr)))
		}
		os.Exit(0)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "netns: tests need root (network namespaces and iptables)")
		os.Exit(1)
	}
	goleak.VerifyTestMain(m)
}

func errText(err error) string {
	if err != nil {
		return "fail: " + err.Error()
	}
	return "ok"
}

func echo(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Println("listen:", err)
		os.Exit(1)
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		fmt.Println("listen:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() { io.Copy(c, c); c.Close() }()
	}
}

func probeTCP(addr string) error {
	c, err := net.DialTimeout("tcp", addr, exchangeTimeout)
	if err != nil {
		return err
	}
	defer c.Close()
	return exchange(c)
}

func probeUDP(addr string) error {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	return exchange(c)
}

func exchange(c net.Conn) error {
	c.SetDeadline(time.Now().Add(exchangeTimeout))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if got != "ping\n" {
		return fmt.Errorf("echoed %q", got)
	}
	return nil
}

const echoPort = "7000"

// startEcho runs an echo helper in host i and waits for it to listen.
func startEcho(t *testing.T, ctx context.Context, nt *Net, i int) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := nt.Command(ctx, i, self)
	cmd.Env = append(os.Environ(), helperEnv+"=echo "+net.JoinHostPort(nt.IP(i), echoPort))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if line != "ready\n" {
		t.Fatalf("echo helper in host %d: %q %v", i, line, err)
	}
	return cmd
}

// probe runs a probe helper in host from against host to's echo helper
// and returns the TCP and UDP outcomes ("ok" or "fail: ..."). The probe
// must finish within 4 exchange timeouts plus a second of start-up.
func probe(t *testing.T, ctx context.Context, nt *Net, from, to int) (tcp, udp string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(ctx, 4*exchangeTimeout+time.Second)
	defer cancel()
	cmd := nt.Command(ctx, from, self)
	cmd.Env = append(os.Environ(), helperEnv+"=probe "+net.JoinHostPort(nt.IP(to), echoPort))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("probe from host %d to %d: %v (%s)", from, to, err, out)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		proto, res, _ := strings.Cut(l, " ")
		switch proto {
		case "tcp":
			tcp = res
		case "udp":
			udp = res
		}
	}
	return tcp, udp
}

func wantProbe(t *testing.T, ctx context.Context, nt *Net, from, to int, ok bool) {
	t.Helper()
	start := time.Now()
	tcp, udp := probe(t, ctx, nt, from, to)
	for proto, res := range map[string]string{"tcp": tcp, "udp": udp} {
		if (res == "ok") != ok {
			t.Errorf("host %d → %d over %s: %s, want ok=%v", from, to, proto, res, ok)
		}
	}
	t.Logf("host %d → %d: tcp %s, udp %s (%s)", from, to, tcp, udp, time.Since(start).Round(time.Millisecond))
}

func wantClient(t *testing.T, nt *Net, to int, ok bool) {
	t.Helper()
	addr := net.JoinHostPort(nt.IP(to), echoPort)
	for proto, err := range map[string]error{"tcp": probeTCP(addr), "udp": probeUDP(addr)} {
		if (err == nil) != ok {
			t.Errorf("client → host %d over %s: %v, want ok=%v", to, proto, err, ok)
		}
	}
}

// TestPartitionCutsAndHeals: TCP and UDP exchanges between processes in
// two hosts work, are cut both ways by Partition, Isolate and Bridge while
// the test (root namespace) still reaches every host, and work again
// after Heal.
func TestPartitionCutsAndHeals(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nt, err := New(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := nt.Close(); err != nil {
			t.Error(err)
		}
	}()
	for i := range 3 {
		startEcho(t, ctx, nt, i)
	}
	wantProbe(t, ctx, nt, 0, 1, true)
	wantProbe(t, ctx, nt, 1, 0, true)
	wantClient(t, nt, 1, true)

	if err := nt.Partition([]int{0}, []int{1, 2}); err != nil {
		t.Fatal(err)
	}
	wantProbe(t, ctx, nt, 0, 1, false)
	wantProbe(t, ctx, nt, 1, 0, false)
	wantProbe(t, ctx, nt, 2, 1, true) // same side
	wantClient(t, nt, 0, true)
	wantClient(t, nt, 1, true)

	if err := nt.Heal(); err != nil {
		t.Fatal(err)
	}
	wantProbe(t, ctx, nt, 0, 1, true)
	wantProbe(t, ctx, nt, 1, 0, true)

	iso := nt.Isolation(2)
	if k, tg := iso.Kind(), iso.Target(); k != "isolate" || tg != "{2} | {0,1}" {
		t.Errorf("isolation: kind %q target %q", k, tg)
	}
	if err := iso.Inject(ctx); err != nil {
		t.Fatal(err)
	}
	wantProbe(t, ctx, nt, 2, 0, false)
	wantProbe(t, ctx, nt, 1, 2, false)
	wantProbe(t, ctx, nt, 0, 1, true)
	wantClient(t, nt, 2, true)

	bridge := &Cut{Net: nt, Sides: [][]int{{0}, {1}}, Via: 2}
	if k, tg := bridge.Kind(), bridge.Target(); k != "bridge" || tg != "{0} | {1} via 2" {
		t.Errorf("bridge cut: kind %q target %q", k, tg)
	}
	if err := bridge.Inject(ctx); err != nil {
		t.Fatal(err)
	}
	wantProbe(t, ctx, nt, 0, 1, false)
	wantProbe(t, ctx, nt, 0, 2, true)
	wantProbe(t, ctx, nt, 1, 2, true)

	if err := nt.Partition([]int{1}, []int{Client}); err != nil {
		t.Fatal(err)
	}
	wantClient(t, nt, 1, false)
	wantClient(t, nt, 0, true)
	wantProbe(t, ctx, nt, 0, 1, true)

	if err := (&Cut{Net: nt}).Heal(ctx); err != nil {
		t.Fatal(err)
	}
	wantClient(t, nt, 1, true)
	wantProbe(t, ctx, nt, 0, 1, true)
}

// TestCommandPIDIsTheProgram: SIGSTOP and SIGKILL sent to a Command's
// process reach the program itself (ip netns exec execs in place).
func TestCommandPIDIsTheProgram(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nt, err := New(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer nt.Close()
	srv := startEcho(t, ctx, nt, 1)
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", srv.Process.Pid))
	self, _ := os.Executable()
	if err != nil || exe != self {
		t.Fatalf("pid %d runs %q (%v), want the helper %q", srv.Process.Pid, exe, err, self)
	}
	if err := srv.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	wantProbe(t, ctx, nt, 0, 1, false) // the stopped echo answers nothing
	if err := srv.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	wantProbe(t, ctx, nt, 0, 1, true)
	if err := srv.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = srv.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("after SIGKILL, Wait: %v", err)
	}
}

// TestCloseAndStale: Close removes every namespace and the root veth, and
// New removes what a dead process left.
func TestCloseAndStale(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	pid := dead.Process.Pid
	staleNS, staleIf := fmt.Sprintf("strata-%d-0-h0", pid), fmt.Sprintf("sn%06x00", pid)
	if err := ipCmds(ctx, []string{"netns", "add", staleNS}, []string{"link", "add", staleIf, "type", "veth", "peer", "name", staleIf[:9] + "p"}); err != nil {
		t.Fatal(err)
	}
	nt, err := New(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	names, err := namespaces(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if n == staleNS {
			t.Errorf("stale namespace %s of dead pid %d is still there", n, pid)
		}
	}
	if linkExists(ctx, staleIf) {
		t.Errorf("stale link %s of dead pid %d is still there", staleIf, pid)
	}
	if err := nt.Close(); err != nil {
		t.Fatal(err)
	}
	names, err = namespaces(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.HasPrefix(n, nt.prefix+"-") {
			t.Errorf("namespace %s left after Close", n)
		}
	}
	if linkExists(ctx, nt.rootIf) {
		t.Errorf("root veth %s left after Close", nt.rootIf)
	}
}
