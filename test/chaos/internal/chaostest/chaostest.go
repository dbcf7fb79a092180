// Package chaostest holds what the fault packages' tests (netns,
// diskfault, clockskew) share: building the broker, finding free ports,
// and polling for a condition.
package chaostest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// ClusterSecret is the --cluster-secret of every broker the fault tests
// start: brokers of a cluster prove it to each other.
const ClusterSecret = "chaos-test-cluster-secret-0123456789abcdef"

// BuildBroker builds cmd/broker into the test's temporary directory.
func BuildBroker(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "strata-broker")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/stratalog/strata/cmd/broker").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// FreePort is a loopback port free for TCP and UDP a moment ago, below the
// ephemeral range (test/integration's freePort says why), not in used; it
// is added to used.
func FreePort(t *testing.T, used map[string]bool) string {
	t.Helper()
	addr, err := FreeAddr(used)
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// FreeAddr is FreePort returning an error instead of failing a test.
func FreeAddr(used map[string]bool) (string, error) {
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

// Poll calls cond every 100 ms, each call bounded by attempt, until it
// returns nil or timeout passes; the error then wraps cond's last.
func Poll(ctx context.Context, timeout, attempt time.Duration, cond func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		cctx, ccancel := context.WithTimeout(ctx, attempt)
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
