package transport

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Liveness: which peer brokers are answering, known per broker pair rather
// than per raft group.
//
// Every frame read from a peer (a request, a response, a heartbeat round
// or its answers) stamps that peer as heard. Peers named with Watch are
// also pulsed: every Options.HeartbeatInterval, a peer that has had no
// heartbeat round from this broker since the last tick gets an empty one,
// which it answers. So while two brokers that watch each other are up and
// connected, each hears the other at least once per interval, whatever
// their raft groups are doing, at the cost of one small frame each way per
// interval per pair. Heard tells how long a peer has been silent, and
// Alive whether it counts as up: heard lately and not found gone since.
//
// The broker uses this to replace a silent leader's groups after one raft
// heartbeat timeout (broker/elector.go) while every group's own raft
// timers run twenty times longer: a group at rest then wakes a few times less
// often, which is most of an idle broker's CPU.
//
//	this broker                      watched peer
//	  tick ─► (no round for a tick?) ── empty round ──► answers (none)
//	  heard[peer] = now  ◄──────────── answer frame ◄──┘
//	  heard[peer] = now  ◄──────────── any frame it sends

// peerLife is what the Mux knows of one peer's liveness. Its times are
// Mux clock readings (Mux.now): monotonic, so a step of the wall clock
// (NTP, an operator) neither silences a live peer nor revives a dead one.
type peerLife struct {
	heard        atomic.Int64 // last frame read from it; 0 = never
	watched      atomic.Int64 // last Watch naming it
	watchedSince atomic.Int64 // first Watch naming it
	down         atomic.Int64 // last time it was found gone (peerdown.go)
	unreachable  atomic.Int64 // since when it is reported unreachable; 0 = reachable (reach.go)
}

// now is the Mux's clock: nanoseconds since its epoch, by the monotonic
// clock. It is never 0, which means "never" in a peerLife.
func (m *Mux) now() int64 { return m.clock(time.Now()) }

// clock converts t, which must carry a monotonic reading (time.Now() and
// times derived from it with Add do; times from time.Unix or a parse do
// not), to the Mux's clock.
func (m *Mux) clock(t time.Time) int64 { return int64(t.Sub(m.epoch)) }

// clockEpochLead: the epoch is this long before the Mux started, so that
// no reading is 0.
const clockEpochLead = time.Second

// watchTTL: a peer not named by Watch for this long is pulsed no more.
const watchTTL = time.Minute

// life returns peer's record, creating it.
func (m *Mux) life(peer raft.ServerAddress) *peerLife {
	if v, ok := m.lives.Load(peer); ok {
		return v.(*peerLife)
	}
	v, _ := m.lives.LoadOrStore(peer, &peerLife{})
	return v.(*peerLife)
}

// Heard returns when a frame from peer was last read, or the zero time if
// none has been since this Mux started.
func (m *Mux) Heard(peer raft.ServerAddress) time.Time {
	v, ok := m.lives.Load(peer)
	if !ok {
		return time.Time{}
	}
	ns := v.(*peerLife).heard.Load()
	if ns == 0 {
		return time.Time{}
	}
	return m.epoch.Add(time.Duration(ns)) // with a monotonic reading, like time.Now()
}

// Alive reports whether peer was heard within d before now and has not
// been found gone (connection refused, peerdown.go) since. A peer watched
// for less than d counts as heard when the watch began; this Mux's own
// address is always alive. now must be a time.Now() reading (or one
// derived from it with Add): the comparison is by the monotonic clock.
func (m *Mux) Alive(peer raft.ServerAddress, now time.Time, d time.Duration) bool {
	if peer == m.addr {
		return true
	}
	v, ok := m.lives.Load(peer)
	if !ok {
		return false
	}
	pl := v.(*peerLife)
	heard := pl.heard.Load()
	if down := pl.down.Load(); down != 0 && heard <= down {
		return false
	}
	heard = max(heard, pl.watchedSince.Load())
	return heard != 0 && m.clock(now)-heard < d.Nanoseconds()
}

// Gone reports whether peer was found gone (its raft port refused a
// connection, peerdown.go) and has not been heard since: stronger news
// than silence, which a pause or a cut network also gives.
func (m *Mux) Gone(peer raft.ServerAddress) bool {
	if peer == m.addr {
		return false
	}
	v, ok := m.lives.Load(peer)
	if !ok {
		return false
	}
	pl := v.(*peerLife)
	down := pl.down.Load()
	return down != 0 && pl.heard.Load() <= down
}

// Watch asks for peers to be pulsed every Options.HeartbeatInterval for
// the next watchTTL (call it again to keep them watched), so that Heard
// stays fresh while they are up. This Mux's own address is ignored. A Mux
// without a HeartbeatInterval pulses nothing.
func (m *Mux) Watch(peers ...raft.ServerAddress) {
	now := m.now()
	for _, p := range peers {
		if p == m.addr || p == "" {
			continue
		}
		pl := m.life(p)
		pl.watched.Store(now)
		pl.watchedSince.CompareAndSwap(0, now)
	}
	if m.opts.HeartbeatInterval > 0 {
		m.pulseOnce.Do(func() { m.spawn(m.runPulses) })
	}
}

// runPulses sends each watched peer an empty round whenever a tick passed
// without one, until the Mux closes.
func (m *Mux) runPulses() {
	t := time.NewTicker(m.opts.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-m.closing:
			return
		case now := <-t.C:
			m.lives.Range(func(k, v any) bool {
				pl := v.(*peerLife)
				if w := pl.watched.Load(); w != 0 && time.Duration(m.clock(now)-w) < watchTTL {
					m.pulse(k.(raft.ServerAddress), now)
					m.checkSilence(k.(raft.ServerAddress), pl, m.clock(now))
				}
				return true
			})
		}
	}
}

// pulse schedules an empty round to peer unless one is scheduled, one is
// still waiting for its answers (a peer that does not answer gets no pile
// of them), or one was sent within the last half interval.
func (m *Mux) pulse(peer raft.ServerAddress, now time.Time) {
	q := m.queue(peer)
	if q == nil {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || q.armed != nil || q.inflight > 0 || now.Sub(q.last) < m.opts.HeartbeatInterval/2 {
		return
	}
	q.arm(peer, 0)
}

// heard stamps c's peer as heard now (every frame read), and back if it
// was reported unreachable (reach.go).
func (c *conn) heard() {
	if c.life == nil {
		c.life = c.m.life(c.peer)
	}
	c.life.heard.Store(c.m.now())
	if c.life.unreachable.Load() != 0 {
		c.m.reachable(c.peer, c.life)
	}
}

// pulses is the Mux's state for runPulses.
type pulses struct {
	pulseOnce sync.Once
	lives     sync.Map // raft.ServerAddress -> *peerLife
}
