package transport

import (
	"context"
	"errors"
	"net"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// Peer-down detection: a broker's raft groups learn that a peer's process
// is gone without waiting for raft's election timeout.
//
// When a connection to or from a peer fails (EOF, reset), the Mux dials
// the peer's listen address (up to four times over 150ms, probeGaps). "Connection refused" means the host is
// up and nothing listens there: the peer's process has exited (kill -9, a
// crash, a stop). Then Options.OnPeerDown is called with the peer's
// address, and its owner can start elections in the groups that peer led
// (replication.Successor) instead of waiting for raft's heartbeat
// timeout, which takes one to three of them.
//
// A dial that connects, times out or fails otherwise proves nothing (a
// peer cut off by the network, paused, or restarting on the same address
// already) and raft's timeouts decide as usual. Probes are one at a time
// per peer; a probe that connects is closed at once (the peer's Mux drops
// a connection without a hello).
func (m *Mux) peerLost(peer raft.ServerAddress, err error) {
	if m.opts.OnPeerDown == nil || errors.Is(err, ErrClosed) || errors.Is(err, ErrBlocked) || m.isBlocked(peer) {
		return
	}
	m.probes.Lock()
	if m.probes.m == nil {
		m.probes.m = make(map[raft.ServerAddress]struct{})
	}
	if _, ok := m.probes.m[peer]; ok {
		m.probes.Unlock()
		return
	}
	m.probes.m[peer] = struct{}{}
	m.probes.Unlock()
	started := m.spawn(func() {
		defer func() {
			m.probes.Lock()
			delete(m.probes.m, peer)
			m.probes.Unlock()
		}()
		if m.peerGone(m.ctx, peer) {
			// The line for an operator is reach.go's "peer unreachable".
			m.log.Debug("raft transport: peer is down (connection refused)", zap.String("peer", string(peer)))
			m.life(peer).down.Store(m.now())
			m.opts.OnPeerDown(m.ctx, peer)
		}
	})
	if !started {
		m.probes.Lock()
		delete(m.probes.m, peer)
		m.probes.Unlock()
	}
}

// peerGone dials peer up to len(probeGaps)+1 times, probeGaps apart, and reports
// whether one found nothing listening there. More than once because a
// process being killed closes its connections a moment before its
// listener: a dial in between still connects.
func (m *Mux) peerGone(ctx context.Context, peer raft.ServerAddress) bool {
	d := net.Dialer{Timeout: m.opts.DialTimeout}
	for try := range len(probeGaps) + 1 {
		if try > 0 {
			t := time.NewTimer(probeGaps[try-1])
			select {
			case <-ctx.Done():
				t.Stop()
				return false
			case <-t.C:
			}
		}
		nc, err := d.DialContext(ctx, "tcp", string(peer))
		if err != nil {
			return errors.Is(err, syscall.ECONNREFUSED)
		}
		// A socket connected to itself is a port nobody listens on.
		gone := selfConnected(nc)
		nc.Close()
		if gone {
			return true
		}
	}
	return false
}

// probeGaps: how long peerGone waits before each dial after the first.
// A killed process's listener closes within milliseconds of its
// connections, so the first retries come soon (each one sooner is that much
// sooner an election); the last is for a loaded machine.
var probeGaps = [...]time.Duration{10 * time.Millisecond, 40 * time.Millisecond, 100 * time.Millisecond}

// Campaign makes this group's raft start an election now, as raft does
// when its leader hands leadership over (a TimeoutNow request): no
// pre-vote, and voters that still follow the old leader vote anyway. The
// election itself follows raft's rules (one vote per term, only for a log
// at least as up to date), so this is always safe; started while the
// leader is alive it only costs that leader its term. Call it for a
// follower whose leader is known to be gone (OnPeerDown).
func (t *Transport) Campaign(ctx context.Context) error {
	respCh := make(chan raft.RPCResponse, 1)
	req := &raft.TimeoutNowRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax}}
	select {
	case t.consumer <- raft.RPC{Command: req, RespChan: respCh}:
	case <-t.closing:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case r := <-respCh:
		return r.Error
	case <-t.closing:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}
