package transport

import (
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestRequestForAnOpeningGroup: a group registered before its raft runs
// (a broker opening its replicas) holds a request until its raft starts,
// which then answers it; if its raft does not start within half the
// request's timeout, the request is refused as for a group not opened
// (ErrUnknownGroup, routine to the sender's raft) before the sender's own
// timeout, instead of timing out on both sides.
func TestRequestForAnOpeningGroup(t *testing.T) {
	const timeout = 1 * time.Second
	a, b := pair(t, Options{RPCTimeout: timeout})

	// Never starts: refused after half the timeout, not timed out.
	ta := mustTransport(t, a, "slow")
	mustTransport(t, b, "slow")
	start := time.Now()
	var resp raft.AppendEntriesResponse
	err := ta.AppendEntries("2", b.Addr(), entry(1), &resp)
	took := time.Since(start)
	if !errors.Is(err, ErrUnknownGroup) {
		t.Fatalf("request to a group whose raft never starts: %v, want ErrUnknownGroup", err)
	}
	if took < timeout/openHold-50*time.Millisecond || took >= timeout {
		t.Fatalf("refused after %s, want about %s (half the timeout %s)", took, timeout/openHold, timeout)
	}

	// Starts a moment later: the held request is answered by its raft.
	ta2 := mustTransport(t, a, "opening")
	tb2 := mustTransport(t, b, "opening")
	errc := make(chan error, 1)
	go func() {
		var resp raft.AppendEntriesResponse
		err := ta2.AppendEntries("2", b.Addr(), entry(7), &resp)
		if err == nil && resp.LastLog != 7 {
			err = errors.New("wrong answer")
		}
		errc <- err
	}()
	waitFor(t, 5*time.Second, "the request to reach the opening group", func() bool {
		tb2.mu.Lock()
		defer tb2.mu.Unlock()
		return len(tb2.mu.queue) > 0 || tb2.mu.delivering
	})
	tb2.SetHeartbeatHandler(func(raft.RPC) {}) // as raft.NewRaft does, then it runs
	serveRaft(t, tb2, ackAll)
	if err := <-errc; err != nil {
		t.Fatalf("request held for an opening group: %v", err)
	}
}
