package transport

import (
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// Reachability: one log line when a peer stops answering, one when it
// answers again, however many raft groups retry meanwhile.
//
// While a peer broker is stopped, killed, restarting or cut off, every raft
// group on this broker that replicates to it fails its RPCs and retries
// them with backoff: with a thousand groups, thousands of failures a
// second that all say the same thing. So the Mux says it once:
//
//	first sign the peer is unreachable         ─► Warn "peer unreachable", mark it
//	  (a dial fails, a connection to or from      (reach.go: unreachable)
//	  it breaks, or a watched peer is silent
//	  for silentIntervals heartbeat intervals)
//	calls that fail meanwhile                  ─► their errors wrap ErrUnreachable:
//	                                              raft's logger writes them at debug
//	                                              (replication/hclog.go)
//	first frame read from it again             ─► Info "peer reachable again", unmark
//
// A peer that refuses connections is also probed and reported to
// Options.OnPeerDown (peerdown.go); that does not log a line of its own.
// Errors that are not about reaching the peer (a malformed frame, a frame
// too large) keep their own errors and lines: they are not routine.

// silentIntervals: a watched peer that has sent nothing for this many
// heartbeat intervals (a broker's heartbeat timeout, three ticks) is
// reported unreachable although its connections are up: paused, or cut
// off without a reset.
const silentIntervals = 3

// unreachable marks peer unreachable because of cause, logging one line if
// it was reachable until now, and returns cause wrapped in ErrUnreachable
// (cause itself if it is this Mux closing or a Block: those are not news).
func (m *Mux) unreachable(peer raft.ServerAddress, cause error) error {
	if errors.Is(cause, ErrClosed) || errors.Is(cause, ErrBlocked) || m.isBlocked(peer) {
		return cause
	}
	select {
	case <-m.closing:
		return cause // our own shutdown breaks every connection
	default:
	}
	pl := m.life(peer)
	if pl.unreachable.CompareAndSwap(0, m.now()) {
		m.log.Warn("raft transport: peer unreachable; its raft groups retry quietly until it answers",
			zap.String("peer", string(peer)), zap.Error(cause))
	}
	if errors.Is(cause, ErrUnreachable) {
		return cause
	}
	return fmt.Errorf("%w: %w", ErrUnreachable, cause)
}

// reachable clears pl's mark, logging one line if it was set (a frame was
// read from the peer: conn.heard).
func (m *Mux) reachable(peer raft.ServerAddress, pl *peerLife) {
	since := pl.unreachable.Load()
	if since == 0 || !pl.unreachable.CompareAndSwap(since, 0) {
		return
	}
	m.resumed(peer) // resume.go
	m.log.Info("raft transport: peer reachable again", zap.String("peer", string(peer)),
		zap.Duration("unreachable_for", time.Duration(m.now()-since).Round(time.Millisecond)))
}

// isUnreachable reports whether peer is marked unreachable.
func (m *Mux) isUnreachable(peer raft.ServerAddress) bool {
	v, ok := m.lives.Load(peer)
	return ok && v.(*peerLife).unreachable.Load() != 0
}

// timeoutErr is the error of a call to peer that got no answer in time:
// ErrTimeout, also wrapping ErrUnreachable if the peer is marked so (the
// timeout is then old news).
func (m *Mux) timeoutErr(peer raft.ServerAddress) error {
	if m.isUnreachable(peer) {
		return fmt.Errorf("%w (%w)", ErrTimeout, ErrUnreachable)
	}
	return ErrTimeout
}

// checkSilence marks pl's peer unreachable if it has sent nothing for
// silentIntervals heartbeat intervals since it was first watched
// (runPulses, every interval, for watched peers).
func (m *Mux) checkSilence(peer raft.ServerAddress, pl *peerLife, now int64) {
	if pl.unreachable.Load() != 0 {
		return
	}
	last := max(pl.heard.Load(), pl.watchedSince.Load())
	limit := silentIntervals * m.opts.HeartbeatInterval
	if last == 0 || time.Duration(now-last) < limit {
		return
	}
	m.unreachable(peer, fmt.Errorf("silent for %s (no answer to heartbeat rounds)", limit))
}
