package transport

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// connBufferSize is the read and the write buffer of one connection. The
// buffers belong to connections, which all groups share, never to a group.
const connBufferSize = 64 << 10

// conn is one TCP connection to a peer. A dialled conn carries our requests
// out and their responses back; an accepted one carries the peer's requests
// in and our responses out. Many requests are in flight on it at once.
type conn struct {
	m        *Mux
	nc       net.Conn
	peer     raft.ServerAddress // dialled: the target; accepted: from the hello
	outbound bool
	br       *bufio.Reader
	life     *peerLife // the peer's liveness record, stamped by readLoop (liveness.go)

	// queued counts writers waiting for or holding w: the last one out
	// flushes, so frames written back to back share a syscall.
	queued atomic.Int32
	w      struct {
		sync.Mutex
		bw  *bufio.Writer
		err error
		// lazyArmed: a flush of lazily written frames is scheduled.
		lazyArmed bool
	}

	closeOnce sync.Once
	closed    chan struct{}

	mu struct {
		sync.Mutex
		err     error // why the conn closed; set once
		nextID  uint64
		pending map[uint64]*call // dialled conns: calls awaiting a response
	}
}

func newConn(m *Mux, nc net.Conn, peer raft.ServerAddress, outbound bool) *conn {
	c := &conn{
		m:        m,
		nc:       nc,
		peer:     peer,
		outbound: outbound,
		br:       bufio.NewReaderSize(nc, connBufferSize),
		closed:   make(chan struct{}),
	}
	c.w.bw = bufio.NewWriterSize(nc, connBufferSize)
	c.mu.pending = make(map[uint64]*call)
	return c
}

// close closes the connection once; pending calls fail with err.
func (c *conn) close(err error) {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.mu.err = err
		pending := c.mu.pending
		c.mu.pending = nil
		c.mu.Unlock()
		close(c.closed)
		c.nc.Close()
		for _, cl := range pending {
			cl.complete(fmt.Errorf("transport: connection to %s: %w", c.peer, err))
		}
	})
}

func (c *conn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// lazyFlushDelay is how long a lazily written frame (an AppendEntries
// without entries, see isLazy, or its answer) may wait in the write buffer
// for company. Raft heartbeats and idle AppendEntries of hundreds of groups
// are spread evenly in time, so flushing each alone costs a write syscall
// apiece on both sides, the largest part of an idle broker's CPU. One
// arriving 10 ms later changes nothing for raft: leaders send a heartbeat
// every HeartbeatTimeout/10 (100 ms and more) and an idle AppendEntries
// every CommitTimeout (500 ms in Strata).
const lazyFlushDelay = 10 * time.Millisecond

// write writes one encoded frame. It flushes unless another writer is
// waiting, who will. The deadline bounds a peer that stops reading.
func (c *conn) write(b []byte, timeout time.Duration) error {
	return c.writeFrame(b, timeout, false)
}

// writeFrame writes one frame; a lazy one is flushed within lazyFlushDelay
// (or sooner, by the next eager write) rather than at once.
func (c *conn) writeFrame(b []byte, timeout time.Duration, lazy bool) error {
	c.queued.Add(1)
	c.w.Lock()
	defer c.w.Unlock()
	if c.w.err != nil {
		c.queued.Add(-1)
		return c.w.err
	}
	c.nc.SetWriteDeadline(time.Now().Add(timeout))
	_, err := c.w.bw.Write(b)
	if c.queued.Add(-1) == 0 && err == nil {
		switch {
		case !lazy:
			err = c.w.bw.Flush()
		case !c.w.lazyArmed:
			c.w.lazyArmed = true
			time.AfterFunc(lazyFlushDelay, c.lazyFlush)
		}
	}
	if err != nil {
		if !c.isClosed() { // it broke under us: the peer is gone or stuck
			err = c.m.unreachable(c.peer, err)
		}
		c.w.err = err
		c.close(err)
	}
	return err
}

// lazyFlush flushes frames that writeFrame left in the buffer.
func (c *conn) lazyFlush() {
	c.w.Lock()
	defer c.w.Unlock()
	c.w.lazyArmed = false
	if c.w.err != nil || c.w.bw.Buffered() == 0 {
		return
	}
	if err := c.w.bw.Flush(); err != nil {
		if !c.isClosed() {
			err = c.m.unreachable(c.peer, err)
		}
		c.w.err = err
		c.close(err)
	}
}

// readLoop reads frames until the connection fails or is closed, then
// fails the pending calls and forgets the conn.
func (c *conn) readLoop() {
	var err error
	for {
		var f *frame
		f, err = readFrame(c.br, c.m.opts.MaxFrameBytes)
		if err != nil {
			break
		}
		if c.m.isBlocked(c.peer) {
			err = ErrBlocked
			break
		}
		c.heard()
		if f.kind == kindRequest && !c.outbound {
			c.m.serveRequest(c, f)
			continue
		}
		if f.kind != kindRequest && c.outbound {
			c.respond(f)
			continue
		}
		err = fmt.Errorf("%w: frame kind %d on a connection that does not carry it", errMalformed, f.kind)
		break
	}
	lost := !c.isClosed() // failed under us, not closed by this Mux
	switch {
	case !lost:
	case errors.Is(err, errMalformed) || errors.Is(err, ErrFrameTooLarge):
		// The peer is up but sent what it should not: not routine.
		c.m.log.Warn("raft transport: connection failed", zap.String("peer", string(c.peer)),
			zap.Bool("outbound", c.outbound), zap.Error(err))
	default:
		if !errors.Is(err, io.EOF) {
			c.m.log.Debug("raft transport: connection failed", zap.String("peer", string(c.peer)),
				zap.Bool("outbound", c.outbound), zap.Error(err))
		}
		err = c.m.unreachable(c.peer, err) // one line per peer, not per connection
	}
	c.close(err)
	c.m.forget(c)
	if lost {
		c.m.peerLost(c.peer, err)
	}
}

// call is one request awaiting its response on a dialled conn.
type call struct {
	id     uint64
	resp   any // decoded into by the reader; owned by the caller after done
	done   chan struct{}
	err    error
	timer  *time.Timer
	onDone func() // pipelines: runs after done is closed

	cancelled error // set by cancelCall before start ran; guarded by the conn's mu
	lazy      bool  // no entries: its frame may wait lazyFlushDelay to share a write (isLazy)
}

func newCall(resp any) *call {
	return &call{resp: resp, done: make(chan struct{})}
}

// complete finishes cl. Whoever removes cl from its conn's pending map
// calls it, exactly once.
func (cl *call) complete(err error) {
	if cl.timer != nil {
		cl.timer.Stop()
	}
	cl.err = err
	close(cl.done)
	if cl.onDone != nil {
		cl.onDone()
	}
}

func (cl *call) isDone() bool {
	select {
	case <-cl.done:
		return true
	default:
		return false
	}
}

// start sends the request frame b (its id field is filled in here) and
// arms cl's timeout. Errors complete cl; the caller waits on cl.done
// either way.
func (c *conn) start(cl *call, b []byte, timeout time.Duration) {
	c.send(cl, b, timeout, timeout)
}

// send is start with the write's deadline and the call's own timeout
// apart; a callTimeout of 0 arms no timer (the caller bounds the wait and
// must cancel the call: startUntimed).
func (c *conn) send(cl *call, b []byte, writeTimeout, callTimeout time.Duration) {
	c.mu.Lock()
	if c.mu.pending == nil {
		err := c.mu.err
		c.mu.Unlock()
		cl.complete(fmt.Errorf("transport: connection to %s: %w", c.peer, err))
		return
	}
	if cl.cancelled != nil {
		c.mu.Unlock()
		cl.complete(cl.cancelled)
		return
	}
	c.mu.nextID++
	cl.id = c.mu.nextID
	c.mu.pending[cl.id] = cl
	id := cl.id
	if callTimeout > 0 {
		cl.timer = time.AfterFunc(callTimeout, func() { c.cancel(id, c.m.timeoutErr(c.peer)) })
	}
	c.mu.Unlock()

	putID(b, id)
	if err := c.writeFrame(b, writeTimeout, cl.lazy); err != nil {
		c.cancel(id, fmt.Errorf("transport: send to %s: %w", c.peer, err))
	}
}

// do sends b as cl and waits for its answer, or for stop: then cl fails
// with ErrClosed. If the reader already took the call it is decoding into
// cl's response, so do waits for it: the response is the caller's again
// when do returns.
func (c *conn) do(cl *call, b []byte, timeout time.Duration, stop <-chan struct{}) {
	c.start(cl, b, timeout)
	select {
	case <-cl.done:
	case <-stop:
		c.cancelCall(cl, ErrClosed)
		<-cl.done
	}
}

// cancel completes the pending call id with err, if it is still pending.
func (c *conn) cancel(id uint64, err error) bool {
	c.mu.Lock()
	cl := c.mu.pending[id]
	delete(c.mu.pending, id)
	c.mu.Unlock()
	if cl == nil {
		return false
	}
	cl.complete(err)
	return true
}

// cancelCall completes cl with err if it is pending; if start has not run
// yet, start completes it with err instead of sending it. Safe to call from
// any goroutine, concurrently with start.
func (c *conn) cancelCall(cl *call, err error) {
	c.mu.Lock()
	if cl.id == 0 {
		if cl.cancelled == nil {
			cl.cancelled = err
		}
		c.mu.Unlock()
		return
	}
	if c.mu.pending[cl.id] != cl {
		c.mu.Unlock()
		return
	}
	delete(c.mu.pending, cl.id)
	c.mu.Unlock()
	cl.complete(err)
}

// respond completes the call a response frame answers. A response to a
// call that timed out or was cancelled is dropped.
func (c *conn) respond(f *frame) {
	c.mu.Lock()
	cl := c.mu.pending[f.id]
	delete(c.mu.pending, f.id)
	c.mu.Unlock()
	if cl == nil {
		return
	}
	var err error
	switch {
	case f.kind == kindNoGroup:
		err = &remoteError{sentinel: ErrUnknownGroup, msg: f.err}
	case f.err != "":
		err = &remoteError{msg: f.err}
	default:
		if ra, ok := cl.resp.(*roundAnswers); ok {
			err = ra.decode(f.payload)
		} else {
			err = decodeResponse(f.payload, cl.resp, c.m.opts.MaxFrameBytes)
		}
	}
	cl.complete(err)
}

// pool holds the connections dialled to one peer, shared round-robin.
type pool struct {
	next  atomic.Uint32
	slots []poolSlot
}

type poolSlot struct {
	mu sync.Mutex // held while dialling: callers of this slot wait for it
	c  *conn
}

// getConn returns a live connection to peer, dialling one if needed.
func (m *Mux) getConn(peer raft.ServerAddress) (*conn, error) {
	if m.isBlocked(peer) {
		return nil, ErrBlocked
	}
	m.mu.Lock()
	if m.mu.closed {
		m.mu.Unlock()
		return nil, ErrClosed
	}
	p := m.mu.pools[peer]
	if p == nil {
		p = &pool{slots: make([]poolSlot, m.opts.ConnsPerPeer)}
		m.mu.pools[peer] = p
	}
	m.mu.Unlock()

	s := &p.slots[int(p.next.Add(1)-1)%len(p.slots)]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c != nil && !s.c.isClosed() {
		return s.c, nil
	}
	s.c = nil
	c, err := m.dial(peer)
	if err != nil {
		return nil, err
	}
	s.c = c
	return c, nil
}

// selfConnected reports whether a dialled connection's two ends are the
// same address.
func selfConnected(nc net.Conn) bool {
	return nc.LocalAddr().String() == nc.RemoteAddr().String()
}

// dial connects to peer, runs the handshake and starts the conn's reader.
func (m *Mux) dial(peer raft.ServerAddress) (*conn, error) {
	d := net.Dialer{Timeout: m.opts.DialTimeout}
	nc, err := d.DialContext(m.ctx, "tcp", string(peer))
	if err != nil {
		if m.ctx.Err() != nil {
			return nil, ErrClosed
		}
		return nil, m.unreachable(peer, fmt.Errorf("dial %s: %w", peer, err))
	}
	if selfConnected(nc) {
		// Dialling a local port in the ephemeral range that nobody
		// listens on can connect the socket to itself (TCP simultaneous
		// open). Keeping it would talk to ourselves and hold the port that
		// the peer needs to listen on when it restarts.
		nc.Close()
		return nil, m.unreachable(peer, fmt.Errorf("dial %s: connected to itself (no broker listens there)", peer))
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	if nc, err = clientHandshake(nc, string(peer), m.addr, purposeRaft, m.opts.Security, m.opts.DialTimeout); err != nil {
		if errors.Is(err, ErrAuth) {
			m.authFailed(string(peer), true, err)
		}
		return nil, m.unreachable(peer, err)
	}
	c := newConn(m, nc, peer, true)
	if !m.register(c) {
		return nil, ErrClosed
	}
	if m.isBlocked(peer) { // Block ran while we dialled
		c.close(ErrBlocked)
		m.forget(c)
		return nil, ErrBlocked
	}
	if !m.spawn(c.readLoop) {
		c.close(ErrClosed)
		m.forget(c)
		return nil, ErrClosed
	}
	return c, nil
}
