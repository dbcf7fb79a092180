package transport

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// Options configures a Mux. The zero value is valid: every zero field takes
// its default.
type Options struct {
	Logger *zap.Logger // nil = nop

	// DialTimeout bounds dialling a peer and its hello. Default 2s.
	DialTimeout time.Duration

	// RPCTimeout bounds AppendEntries, RequestVote, RequestPreVote and
	// TimeoutNow calls, from send to response, and how long a received
	// request may wait for its group's raft. Default 5s.
	RPCTimeout time.Duration

	// SnapshotTimeout bounds an InstallSnapshot call while the log copy
	// it stands for makes no progress: it is an idle timeout, reset by
	// every chunk of the group's log served to a copy (install.go). A
	// received InstallSnapshot gets it too, once its group's install gate
	// let it through. Default 60s.
	SnapshotTimeout time.Duration

	// MaxFrameBytes bounds a frame after its length prefix, both ways, and
	// the memory decoding one may take; checked before allocating. It also
	// bounds a snapshot, which travels inline. Default 64 MiB + 1 MiB.
	MaxFrameBytes int

	// ConnsPerPeer is the number of connections dialled to each peer and
	// shared, round-robin, by all groups. Default 2.
	ConnsPerPeer int

	// PipelineDepth is the number of AppendEntries a pipeline keeps in
	// flight to one follower. Default 4 (raft's NetworkTransport uses 2:
	// deep pipelines raise commit latency under load, raft PR 541).
	PipelineDepth int

	// MaxAppendBytes bounds the entries of one AppendEntries frame: a
	// larger request is sent as consecutive parts (split.go). An entry
	// larger than this travels alone, so it must still fit MaxFrameBytes.
	// Default 8 MiB; at most MaxFrameBytes less 1 MiB.
	MaxAppendBytes int

	// PipelineBytes bounds the entry bytes a pipeline keeps in flight to
	// one follower, with PipelineDepth bounding their count: a follower
	// catching up is sent a steady stream of parts, not a backlog that
	// outlives RPCTimeout in its queue. A request larger than the window
	// takes all of it. Default 32 MiB.
	PipelineBytes int

	// HeartbeatInterval is the shortest time between two heartbeat rounds
	// to one peer (beats.go): every group's heartbeat to that peer waits
	// for the next round. Keep it under a third of raft's
	// HeartbeatTimeout and half its LeaderLeaseTimeout. It is also the
	// pace of pulses to watched peers (liveness.go). Default 0: no pacing,
	// a round goes as soon as lazyFlushDelay has let other groups'
	// heartbeats join, and no pulses.
	HeartbeatInterval time.Duration

	// OnPeerDown, if set, is called (on a goroutine of the Mux, with a
	// context that ends when the Mux closes) when a connection to or from
	// a peer failed and a dial found nothing listening at the peer's
	// address: its process is gone (peerdown.go).
	OnPeerDown func(ctx context.Context, peer raft.ServerAddress)

	// Security authenticates every connection, both ways, before a frame
	// is read (handshake.go). The zero value is the empty key: tests only.
	Security Security

	// AdvertiseHost replaces an unspecified bound host (0.0.0.0, ::) in
	// the Mux's address, which raft knows this broker by and which the
	// hello gives peers: the host peers dial. Default 127.0.0.1. A bound
	// host that is specified is kept.
	AdvertiseHost string
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 2 * time.Second
	}
	if o.RPCTimeout <= 0 {
		o.RPCTimeout = 5 * time.Second
	}
	if o.SnapshotTimeout <= 0 {
		o.SnapshotTimeout = 60 * time.Second
	}
	if o.MaxFrameBytes <= 0 {
		o.MaxFrameBytes = 64<<20 + 1<<20
	}
	if int64(o.MaxFrameBytes) > math.MaxInt32 {
		o.MaxFrameBytes = math.MaxInt32 // the length field is a u32; 2 GiB is plenty
	}
	if o.ConnsPerPeer <= 0 {
		o.ConnsPerPeer = 2
	}
	if o.PipelineDepth <= 0 {
		o.PipelineDepth = 4
	}
	if o.MaxAppendBytes <= 0 {
		o.MaxAppendBytes = 8 << 20
	}
	if o.MaxAppendBytes > o.MaxFrameBytes-1<<20 {
		o.MaxAppendBytes = max(o.MaxFrameBytes-1<<20, 1)
	}
	if o.PipelineBytes <= 0 {
		o.PipelineBytes = 32 << 20
	}
	if o.HeartbeatInterval < 0 {
		o.HeartbeatInterval = 0
	}
	return o
}

func (o Options) timeout(typ rpcType) time.Duration {
	if typ == rpcInstallSnapshot {
		return o.SnapshotTimeout
	}
	return o.RPCTimeout
}

// Mux is one broker's raft endpoint: one TCP listener and a pool of
// connections per peer, shared by the Transports of all its raft groups.
//
// It owns every goroutine it starts: the accept loop, one reader per
// connection, and short-lived ones that hand requests to a group's raft
// and wait for the answer. Close stops them all and waits.
type Mux struct {
	opts    Options
	log     *zap.Logger
	ln      net.Listener
	addr    raft.ServerAddress
	closing chan struct{}
	epoch   time.Time       // the clock's zero (liveness.go: Mux.now)
	ctx     context.Context // cancelled by Close; bounds dials
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	// served counts requests received (a heartbeat round is one),
	// heartbeats received, and heartbeat rounds sent and answered; tests
	// read them to measure the idle RPC rate.
	served struct{ requests, heartbeats, rounds atomic.Uint64 }

	// probes are the peers being dialled after a connection failed
	// (peerdown.go).
	probes struct {
		sync.Mutex
		m map[raft.ServerAddress]struct{}
	}

	// grpc hands accepted gRPC connections to Listener's Accept.
	grpc *connListener

	// authFailures counts failed handshakes; authLog rate-limits their
	// warnings (handshake.go).
	authFailures atomic.Uint64
	authLog      authLog

	// pulses keeps watched peers heard from (liveness.go).
	pulses

	// resume: groups owed a nudge, and waiters, per unreachable peer
	// (resume.go).
	resume resumeState

	// beats holds each peer's next heartbeat round (beats.go).
	beats struct {
		sync.Mutex
		closed bool
		peers  map[raft.ServerAddress]*beatQueue
	}

	// blocked is the set of blocked peers, copied on write: every frame
	// read checks it.
	blocked atomic.Pointer[map[raft.ServerAddress]struct{}]

	mu struct {
		sync.RWMutex
		closed bool
		groups map[string]*Transport
		pools  map[raft.ServerAddress]*pool
		conns  map[*conn]struct{} // dialled and accepted
	}
}

// Listen binds addr ("host:port"; port 0 picks one) and starts accepting
// peers. The bound address, Addr, is what raft must know this broker by.
func Listen(addr string, opts Options) (*Mux, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("transport: listen %s: %w", addr, err)
	}
	opts = opts.withDefaults()
	m := &Mux{
		opts:    opts,
		log:     opts.Logger,
		ln:      ln,
		addr:    advertised(ln.Addr().String(), opts.AdvertiseHost),
		closing: make(chan struct{}),
		epoch:   time.Now().Add(-clockEpochLead),
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.grpc = newConnListener(ln.Addr())
	m.blocked.Store(&map[raft.ServerAddress]struct{}{})
	m.mu.groups = make(map[string]*Transport)
	m.mu.pools = make(map[raft.ServerAddress]*pool)
	m.mu.conns = make(map[*conn]struct{})
	m.wg.Add(1)
	go m.acceptLoop()
	return m, nil
}

// Addr returns the address peers reach this Mux at: the bound address,
// with an unspecified host replaced (Options.AdvertiseHost). Raft must know
// this broker by it.
func (m *Mux) Addr() raft.ServerAddress { return m.addr }

// advertised is bound with an unspecified host replaced by host (or
// 127.0.0.1).
func advertised(bound, host string) raft.ServerAddress {
	h, port, err := net.SplitHostPort(bound)
	if ip := net.ParseIP(h); err != nil || ip == nil || !ip.IsUnspecified() {
		return raft.ServerAddress(bound)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return raft.ServerAddress(net.JoinHostPort(host, port))
}

// Transport registers group and returns its raft.Transport. Group names are
// opaque and must be unique on this broker; registering a name twice fails
// until the first Transport is closed.
func (m *Mux) Transport(group string) (*Transport, error) {
	if len(group) > maxGroupLen {
		return nil, fmt.Errorf("transport: group name of %d bytes, limit %d", len(group), maxGroupLen)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.closed {
		return nil, ErrClosed
	}
	if _, ok := m.mu.groups[group]; ok {
		return nil, fmt.Errorf("transport: raft group %q already registered", group)
	}
	t := newTransport(m, group)
	m.mu.groups[group] = t
	return t, nil
}

// lookup returns the Transport registered for group, or nil.
func (m *Mux) lookup(group string) *Transport {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.mu.groups[group]
}

// unregister removes t, if it is still the group's Transport.
func (m *Mux) unregister(t *Transport) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.groups[t.group] == t {
		delete(m.mu.groups, t.group)
	}
}

// addWorker counts one more goroutine or callback of the Mux that Close
// waits for, unless the Mux is closed. Whoever it was for calls m.wg.Done.
func (m *Mux) addWorker() bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.mu.closed {
		return false
	}
	m.wg.Add(1)
	return true
}

// spawn runs fn on a goroutine owned by the Mux, unless the Mux is closed.
func (m *Mux) spawn(fn func()) bool {
	if !m.addWorker() {
		return false
	}
	go func() {
		defer m.wg.Done()
		fn()
	}()
	return true
}

// Block drops all traffic to and from peer until Unblock: calls to it fail
// with ErrBlocked, its connections (both ways) are closed, and frames and
// connections from it are refused. For fault-injection tests.
func (m *Mux) Block(peer raft.ServerAddress) {
	m.mu.Lock()
	next := make(map[raft.ServerAddress]struct{}, len(*m.blocked.Load())+1)
	for p := range *m.blocked.Load() {
		next[p] = struct{}{}
	}
	next[peer] = struct{}{}
	m.blocked.Store(&next)
	var victims []*conn
	for c := range m.mu.conns {
		if c.peer == peer {
			victims = append(victims, c)
		}
	}
	m.mu.Unlock()
	for _, c := range victims {
		c.close(ErrBlocked)
	}
}

// Unblock undoes Block(peer).
func (m *Mux) Unblock(peer raft.ServerAddress) {
	m.mu.Lock()
	defer m.mu.Unlock()
	next := make(map[raft.ServerAddress]struct{}, len(*m.blocked.Load()))
	for p := range *m.blocked.Load() {
		if p != peer {
			next[p] = struct{}{}
		}
	}
	m.blocked.Store(&next)
}

// UnblockAll undoes every Block.
func (m *Mux) UnblockAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.blocked.Store(&map[raft.ServerAddress]struct{}{})
}

func (m *Mux) isBlocked(peer raft.ServerAddress) bool {
	_, ok := (*m.blocked.Load())[peer]
	return ok
}

// Close closes the listener and every connection, fails pending calls with
// ErrClosed, stops every goroutine of the Mux and waits for them. Close the
// group Transports (their rafts) first: a raft still running sees its
// RPCs fail with ErrClosed. Close is idempotent.
func (m *Mux) Close() error {
	m.mu.Lock()
	if m.mu.closed {
		m.mu.Unlock()
		m.wg.Wait()
		return nil
	}
	m.mu.closed = true
	conns := make([]*conn, 0, len(m.mu.conns))
	for c := range m.mu.conns {
		conns = append(conns, c)
	}
	groups := make([]*Transport, 0, len(m.mu.groups))
	for _, t := range m.mu.groups {
		groups = append(groups, t)
	}
	m.mu.Unlock()

	close(m.closing)
	m.cancel()
	m.closeRounds()
	err := m.ln.Close()
	m.grpc.Close()
	for _, c := range conns {
		c.close(ErrClosed)
	}
	for _, t := range groups {
		t.Close()
	}
	m.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("transport: close listener: %w", err)
	}
	return nil
}

// acceptLoop accepts peers until the listener is closed.
func (m *Mux) acceptLoop() {
	defer m.wg.Done()
	var delay time.Duration
	for {
		nc, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.closing:
				return
			default:
			}
			// Out of file descriptors and the like: back off, as
			// net/http does, rather than spin.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			m.log.Warn("raft transport: accept failed", zap.Error(err), zap.Duration("retry_in", delay))
			t := time.NewTimer(delay)
			select {
			case <-m.closing:
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		delay = 0
		if !m.spawn(func() { m.serveConn(nc) }) {
			nc.Close()
			return
		}
	}
}

// serveConn runs the handshake of an accepted connection, then hands a
// gRPC connection to Listener or reads a raft connection's frames.
func (m *Mux) serveConn(nc net.Conn) {
	remote := nc.RemoteAddr().String()
	h, nc, err := serverHandshake(nc, m.opts.Security, m.opts.DialTimeout)
	if err != nil {
		if !errors.Is(err, errSilent) {
			m.authFailed(remote, false, err)
		}
		return
	}
	if h.purpose == purposeGRPC {
		if !m.grpc.put(nc) {
			nc.Close()
		}
		return
	}
	peer := h.addr
	if m.isBlocked(peer) {
		nc.Close()
		return
	}
	c := newConn(m, nc, peer, false)
	if !m.register(c) {
		return
	}
	c.readLoop()
}

// register records c so Close and Block can find it; it closes c and
// returns false if the Mux is closed.
func (m *Mux) register(c *conn) bool {
	m.mu.Lock()
	closed := m.mu.closed
	if !closed {
		m.mu.conns[c] = struct{}{}
	}
	m.mu.Unlock()
	if closed {
		c.close(ErrClosed)
	}
	return !closed
}

func (m *Mux) forget(c *conn) {
	m.mu.Lock()
	delete(m.mu.conns, c)
	m.mu.Unlock()
}
