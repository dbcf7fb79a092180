package transport

import (
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Resuming replication to a peer that was unreachable.
//
// Raft retries a follower's AppendEntries only when the leader appends or
// after CommitTimeout (20-40 s in Strata), and waits longer after each
// failure (up to ~10 s). So a follower back from a pause or a restart with
// nothing new written waited tens of seconds to be sent what it missed,
// and one whose leader kept writing had its retries backed off by the
// failures counted while it was down. Two things fix that:
//
//   - An AppendEntries that failed because its peer is unreachable
//     (reach.go: refused, broken, silent) returns its error only once the
//     peer answers again or RPCTimeout has passed since it was sent,
//     rather than at once: raft counts one failure per RPCTimeout, not one
//     per write, so its backoff stays short.
//   - A group whose AppendEntries to a peer failed is owed a nudge: when
//     the peer is heard again, its catch-up hook (SetCatchUp) makes raft
//     send at once.

// resumeState is the Mux's record of groups owed a nudge per peer, and of
// the waiters for a peer's return.
type resumeState struct {
	mu   sync.Mutex
	owed map[raft.ServerAddress]map[*Transport]struct{}
	back map[raft.ServerAddress]chan struct{} // closed when the peer answers again
}

// owe records that t's AppendEntries to peer failed.
func (m *Mux) owe(peer raft.ServerAddress, t *Transport) {
	m.resume.mu.Lock()
	defer m.resume.mu.Unlock()
	if m.resume.owed == nil {
		m.resume.owed = map[raft.ServerAddress]map[*Transport]struct{}{}
	}
	if m.resume.owed[peer] == nil {
		m.resume.owed[peer] = map[*Transport]struct{}{}
	}
	m.resume.owed[peer][t] = struct{}{}
}

// resumed runs when peer answers again: it wakes the waiters and nudges
// the groups owed one.
func (m *Mux) resumed(peer raft.ServerAddress) {
	m.resume.mu.Lock()
	owed := m.resume.owed[peer]
	delete(m.resume.owed, peer)
	if ch := m.resume.back[peer]; ch != nil {
		close(ch)
		delete(m.resume.back, peer)
	}
	m.resume.mu.Unlock()
	for t := range owed {
		if c := t.catchUp.Load(); c != nil && !t.isClosed() {
			c.fn()
		}
	}
}

// awaitReachable waits, up to d, for a peer marked unreachable to answer
// again, or for stop or stop2. It returns at once for a reachable peer or
// d <= 0.
func (m *Mux) awaitReachable(peer raft.ServerAddress, d time.Duration, stop, stop2 <-chan struct{}) {
	if d <= 0 {
		return
	}
	m.resume.mu.Lock()
	if !m.isUnreachable(peer) {
		m.resume.mu.Unlock()
		return
	}
	if m.resume.back == nil {
		m.resume.back = map[raft.ServerAddress]chan struct{}{}
	}
	ch := m.resume.back[peer]
	if ch == nil {
		ch = make(chan struct{})
		m.resume.back[peer] = ch
	}
	m.resume.mu.Unlock()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ch:
	case <-timer.C:
	case <-stop:
	case <-stop2:
	case <-m.closing:
	}
}
