package main

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// proc is one child process: a broker or a server this program started.
// Only stop ends it, by its PID; nothing here signals by name.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited and been reaped
}

// startProc runs bin with args, its stdout and stderr appended to
// logPath. env replaces the environment when non-nil.
func startProc(name, bin string, args, env []string, logPath string) (*proc, error) {
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer lf.Close() // the child has its own copy of the descriptor
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = env
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	return p, nil
}

// stop sends SIGTERM to the process (a clean shutdown for both systems),
// and SIGKILL if it has not exited within grace; it returns once the
// process is gone.
func (p *proc) stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
}

// exitedErr says, with the end of its log, that the process has exited,
// or returns nil while it runs.
func (p *proc) exitedErr() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited (%v); the end of its log:\n%s", p.name, p.cmd.ProcessState, p.logTail(20))
	default:
		return nil
	}
}

// logTail returns the last n lines of the process's log.
func (p *proc) logTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(log unreadable: " + err.Error() + ")"
	}
	lines := strings.Split(string(bytes.TrimRight(b, "\n")), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}

// procs is the processes of one cluster.
type procs []*proc

// stopAll stops them all at once and waits for each.
func (ps procs) stopAll() {
	done := make(chan struct{})
	for _, p := range ps {
		go func() { p.stop(30 * time.Second); done <- struct{}{} }()
	}
	for range ps {
		<-done
	}
}

// anyExited returns the first exitedErr of ps.
func (ps procs) anyExited() error {
	for _, p := range ps {
		if err := p.exitedErr(); err != nil {
			return err
		}
	}
	return nil
}

// ports hands out loopback addresses that were free for TCP and UDP a
// moment ago (Strata's gossip uses both), never the same one twice. It
// picks below Linux's ephemeral range (32768-60999), where the kernel
// does not hand out ports to outgoing connections on its own.
type ports map[string]bool

func (used ports) next() (string, error) {
	for range 200 {
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000))
		if used[addr] {
			continue
		}
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
		used[addr] = true
		return addr, nil
	}
	return "", errors.New("no free TCP+UDP port on 127.0.0.1 in 200 tries")
}
