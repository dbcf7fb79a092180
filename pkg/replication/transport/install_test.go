package transport

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func sendInstall(tr *Transport, to raft.ServerAddress) (raft.InstallSnapshotResponse, error) {
	var sr raft.InstallSnapshotResponse
	data := []byte("snapshot-bytes")
	err := tr.InstallSnapshot("2", to, &raft.InstallSnapshotRequest{Term: 4, LastLogIndex: 9, Size: int64(len(data))}, &sr, bytes.NewReader(data))
	return sr, err
}

// An install waits for its group's gate as long as the sender's group
// serves its log to the copy, far past SnapshotTimeout; with no progress
// it fails after SnapshotTimeout. Raft on the receiver sees the request
// only once the gate let it through.
func TestInstallWaitsWhileTheCopyProgresses(t *testing.T) {
	const idle = 300 * time.Millisecond
	a, b := pair(t, Options{SnapshotTimeout: idle})
	ta, tb := mustTransport(t, a, "g"), mustTransport(t, b, "g")
	serveRaft(t, tb, ackAll)
	release := make(chan struct{})
	gated := make(chan uint64, 4)
	tb.SetInstallGate(func(ctx context.Context, req *raft.InstallSnapshotRequest) error {
		gated <- req.LastLogIndex
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})

	// Progress every idle/3 for 4 idle periods, then the copy completes.
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(idle / 3)
		defer tick.Stop()
		deadline := time.Now().Add(4 * idle)
		for time.Now().Before(deadline) {
			<-tick.C
			ta.NoteCopyProgress()
		}
		close(release)
	}()
	started := time.Now()
	sr, err := sendInstall(ta, b.Addr())
	<-done
	if err != nil || !sr.Success {
		t.Fatalf("install with a copy in progress: %+v, %v after %s", sr, err, time.Since(started))
	}
	if took := time.Since(started); took < 3*idle {
		t.Fatalf("the install returned after %s, before the gate let it through", took)
	}
	if idx := <-gated; idx != 9 {
		t.Fatalf("the gate saw index %d, want 9", idx)
	}

	// No progress: the call gives up after about SnapshotTimeout.
	tb.SetInstallGate(func(ctx context.Context, _ *raft.InstallSnapshotRequest) error {
		<-ctx.Done()
		return ctx.Err()
	})
	started = time.Now()
	if _, err := sendInstall(ta, b.Addr()); !errors.Is(err, ErrTimeout) {
		t.Fatalf("install with no progress: %v, want ErrTimeout", err)
	}
	if took := time.Since(started); took < idle || took > 5*idle {
		t.Fatalf("gave up after %s; want about %s", took, idle)
	}
}

// An install the peer cannot take yet (its group not open: a broker
// restarting) is sent again within the idle window instead of failing to
// raft, which would retry only after its CommitTimeout.
func TestInstallRetriesAPeerThatIsNotThereYet(t *testing.T) {
	a, b := pair(t, Options{SnapshotTimeout: 2 * time.Second})
	ta := mustTransport(t, a, "g")
	type result struct {
		sr  raft.InstallSnapshotResponse
		err error
	}
	res := make(chan result, 1)
	go func() {
		sr, err := sendInstall(ta, b.Addr())
		res <- result{sr, err}
	}()
	time.Sleep(3 * installRetryGap) // the peer's group opens later; nothing to wait on
	serveRaft(t, mustTransport(t, b, "g"), ackAll)
	if r := <-res; r.err != nil || !r.sr.Success {
		t.Fatalf("install to a group that opened during the call: %+v, %v", r.sr, r.err)
	}
}
