package transport

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// A snapshot install in Strata stands for a copy of the leader's log (the
// snapshot itself is 60 bytes of offsets), and that copy can take as long
// as the log is large. Two pieces here keep it off raft's main loop and
// free of a fixed overall timeout:
//
//   - On the follower, an InstallGate runs before raft sees the request:
//     the group copies the log into a staging area from a goroutine it
//     owns (replication/logcopy.go), and the request is queued for raft
//     only once the staged copy reaches the snapshot's index. Raft keeps
//     answering heartbeats, votes and AppendEntries meanwhile.
//   - On the leader, the InstallSnapshot call waits while the copy makes
//     progress: its timeout (Options.SnapshotTimeout) is an idle timeout,
//     reset whenever this group served a chunk of its log to a copy
//     (NoteCopyProgress), and a call the peer could not be reached for is
//     sent again within it. raft's per-follower replication goroutine is
//     the only one that waits.
//
// Rejected: answering the install with "copy in progress" at once and
// letting raft retry. raft counts each answer as a failure, logs it at
// error level and backs off up to 10 s between retries, so a finished copy
// would wait for the next retry and operators would see a stream of errors
// for a routine catch-up.

// InstallGate is called with an InstallSnapshot request before raft sees
// it, on a goroutine of its own, and may block for as long as the copy it
// waits for makes progress. nil lets raft take the request; an error is
// the request's answer (the leader retries). ctx ends when the group's
// Transport or the Mux closes.
//
// An alias, so that a group can set one without importing this package.
type InstallGate = func(ctx context.Context, req *raft.InstallSnapshotRequest) error

// installState is a Transport's gate and copy progress.
type installState struct {
	gate     atomic.Pointer[InstallGate]
	progress atomic.Uint64 // chunks of this group's log served to a copy
}

// SetInstallGate sets the group's gate (nil: none, raft takes installs as
// they come).
func (t *Transport) SetInstallGate(g InstallGate) {
	if g == nil {
		t.install.gate.Store(nil)
		return
	}
	t.install.gate.Store(&g)
}

// NoteCopyProgress records that this group served a chunk of its log to a
// replica's copy: an InstallSnapshot call of this group waiting for that
// replica keeps waiting.
func (t *Transport) NoteCopyProgress() { t.install.progress.Add(1) }

// gateInstall runs the group's gate for an InstallSnapshot request, if it
// has one, and then queues it for raft; false if there is no gate (the
// caller queues it). The request's deadline for raft starts after the
// gate.
func (t *Transport) gateInstall(in *inbound) bool {
	g := t.install.gate.Load()
	if g == nil {
		return false
	}
	req, ok := in.req.Command.(*raft.InstallSnapshotRequest)
	if !ok {
		return false
	}
	return t.m.spawn(func() {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() { // ends with this request
			select {
			case <-t.closing:
			case <-t.m.closing:
			case <-ctx.Done():
			}
			cancel()
		}()
		if err := (*g)(ctx, req); err != nil {
			t.m.reply(in.c, in.id, in.rpc, in.group, raft.RPCResponse{
				Error: fmt.Errorf("installSnapshot (group %q): %w", in.group, err),
			})
			return
		}
		in.deadline = time.Now().Add(t.m.opts.timeout(in.rpc))
		t.enqueue(in)
	})
}

// callInstall sends an InstallSnapshot and waits for its answer for as
// long as a copy of this group's log makes progress: it fails with
// ErrTimeout only after SnapshotTimeout passes with no chunk served.
//
// A call that fails because the peer cannot be reached (its broker
// restarting, a connection broken) or has not opened the group yet is sent
// again every installRetryGap within that same idle window: raft would
// retry only on the next new entry or after its CommitTimeout (20-40 s with
// the broker's tuning), and the follower's copy resumes as soon as the
// install reaches it again.
func (t *Transport) callInstall(target raft.ServerAddress, args *raft.InstallSnapshotRequest, snapshot []byte, resp *raft.InstallSnapshotResponse) error {
	idle := t.m.opts.SnapshotTimeout
	seen, progressAt := t.install.progress.Load(), time.Now()
	for {
		err := t.installOnce(target, args, snapshot, resp, &seen, &progressAt)
		if err == nil || !retryInstall(err) || time.Since(progressAt)+installRetryGap > idle {
			return err
		}
		w := time.NewTimer(installRetryGap)
		select {
		case <-w.C:
		case <-t.closing:
			w.Stop()
			return err
		}
		if p := t.install.progress.Load(); p != seen {
			seen, progressAt = p, time.Now()
		}
	}
}

// installRetryGap: how often callInstall sends an install again to a peer
// it cannot reach.
const installRetryGap = 250 * time.Millisecond

// retryInstall reports whether an install that failed with err is worth
// sending again at once.
func retryInstall(err error) bool {
	return errors.Is(err, ErrUnreachable) || errors.Is(err, ErrUnknownGroup)
}

// installOnce is one InstallSnapshot call; seen and progressAt track the
// group's copy progress across calls.
func (t *Transport) installOnce(target raft.ServerAddress, args *raft.InstallSnapshotRequest, snapshot []byte, resp *raft.InstallSnapshotResponse, seen *uint64, progressAt *time.Time) error {
	if t.isClosed() {
		return ErrClosed
	}
	typ := rpcInstallSnapshot
	b, err := t.encodeRequest(typ, args, snapshot)
	if err != nil {
		return fmt.Errorf("%s to %s (group %q): %w", typ, target, t.group, err)
	}
	c, err := t.m.getConn(target)
	if err != nil {
		return fmt.Errorf("%s to %s (group %q): %w", typ, target, t.group, err)
	}
	idle := t.m.opts.SnapshotTimeout
	cl := newCall(resp)
	c.startUntimed(cl, b, t.m.opts.RPCTimeout)
	tick := time.NewTicker(min(idle, time.Second))
	defer tick.Stop()
wait:
	for {
		select {
		case <-cl.done:
			break wait
		case <-t.closing:
			c.cancelCall(cl, ErrClosed)
			<-cl.done
			break wait
		case <-tick.C:
			if p := t.install.progress.Load(); p != *seen {
				*seen, *progressAt = p, time.Now()
				continue
			}
			if time.Since(*progressAt) < idle {
				continue
			}
			c.cancelCall(cl, fmt.Errorf("%w: no progress of the log copy within %s", ErrTimeout, idle))
			<-cl.done
			break wait
		}
	}
	if cl.err != nil {
		return fmt.Errorf("%s to %s (group %q): %w", typ, target, t.group, cl.err)
	}
	return nil
}

// startUntimed is conn.start without the call's timer: the caller bounds
// the wait itself (and must cancel the call). writeTimeout bounds sending
// the frame.
func (c *conn) startUntimed(cl *call, b []byte, writeTimeout time.Duration) {
	c.send(cl, b, writeTimeout, 0)
}
