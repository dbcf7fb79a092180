package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// TestMain removes the broker binary that brokerBinary built, so test
// runs leave nothing in the temporary directory.
func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// brokerBinary builds cmd/broker once for the test binary's lifetime.
func brokerBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "strata-it-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "strata-broker")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/stratalog/strata/cmd/broker").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// brokerProc is one running strata-broker process.
type brokerProc struct {
	cmd     *exec.Cmd
	APIAddr string
	waited  chan struct{}
}

var listenLine = regexp.MustCompile(`listening: api=(\S+) http=`)

// startBroker runs strata-broker with dataDir and extra flags, waiting (up
// to 30 s) for its "listening" line. The process is killed at test end if
// still running. Its log goes to the test binary's stderr.
func startBroker(t *testing.T, dataDir string, extra ...string) *brokerProc {
	t.Helper()
	return startBrokerLog(t, dataDir, os.Stderr, extra...)
}

// startBrokerLog is startBroker with the broker's log (stderr) written to
// logw. The extra flags come after the defaults, so they override them
// (e.g. fixed --api-addr or --raft-addr, --log-level).
func startBrokerLog(t *testing.T, dataDir string, logw io.Writer, extra ...string) *brokerProc {
	t.Helper()
	args := append([]string{"--data-dir", dataDir, "--api-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0", "--gossip-addr", "127.0.0.1:0", "--log-level", "warn"}, extra...)
	cmd := exec.Command(brokerBinary(t), args...)
	cmd.Stderr = logw
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &brokerProc{cmd: cmd, waited: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := listenLine.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	go func() { cmd.Wait(); close(p.waited) }()
	t.Cleanup(func() { p.kill(t) })
	select {
	case p.APIAddr = <-addr:
	case <-p.waited:
		t.Fatalf("strata-broker exited before listening: %v", cmd.ProcessState)
	case <-time.After(30 * time.Second):
		t.Fatal("strata-broker did not report its address within 30s")
	}
	return p
}

// kill sends SIGKILL to the process we started and waits for it.
func (p *brokerProc) kill(t *testing.T) {
	select {
	case <-p.waited:
		return
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Logf("kill %d: %v", p.cmd.Process.Pid, err)
	}
	<-p.waited
}

// stop sends SIGTERM and waits up to 30 s for a clean exit.
func (p *brokerProc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	select {
	case <-p.waited:
		if code := p.cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("strata-broker exited with %d after SIGTERM", code)
		}
	case <-ctx.Done():
		t.Fatal("strata-broker did not stop within 30s of SIGTERM")
	}
}
