package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// The inter-broker listener carries a second protocol: gRPC connections to
// the brokers' internal service. A dialer names it in the hello (purpose
// 2); after the handshake the acceptor hands the connection to Listener's
// Accept, for a grpc.Server serving the internal service alone, and a
// dialer (DialContext) gives it to grpc as its own. So the internal
// service is served only to peers that proved the cluster's secret or
// certificate, on the port raft uses, and not on the client API.

// Listener returns the listener of authenticated gRPC connections to this
// Mux (hello purpose 2). Serve a grpc.Server on it; it is closed with the
// Mux (Accept then returns net.ErrClosed), and closing it only stops
// gRPC connections being handed over.
func (m *Mux) Listener() net.Listener { return m.grpc }

// DialContext dials addr, another broker's Mux, for a gRPC connection to
// its internal service: TCP, the handshake with this Mux's security, then
// the connection is gRPC's. Give it to grpc.WithContextDialer.
func (m *Mux) DialContext(ctx context.Context, addr string) (net.Conn, error) {
	nc, err := dialGRPC(ctx, addr, m.addr, m.opts.Security, m.opts.DialTimeout)
	if err != nil {
		if errors.Is(err, ErrAuth) {
			m.authFailed(addr, true, err)
		}
		return nil, err
	}
	return nc, nil
}

// DialGRPC is DialContext for a process that has no Mux (tools, tests):
// self is the address the hello claims (with TLS, a host its certificate
// names).
func DialGRPC(ctx context.Context, addr, self string, sec Security) (net.Conn, error) {
	return dialGRPC(ctx, addr, raft.ServerAddress(self), sec, 2*time.Second)
}

func dialGRPC(ctx context.Context, addr string, self raft.ServerAddress, sec Security, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if selfConnected(nc) {
		nc.Close()
		return nil, fmt.Errorf("dial %s: connected to itself (no broker listens there)", addr)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	return clientHandshake(nc, addr, self, purposeGRPC, sec, timeout)
}

// connListener is a net.Listener fed by the Mux's accept path.
type connListener struct {
	addr   net.Addr
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newConnListener(addr net.Addr) *connListener {
	return &connListener{addr: addr, ch: make(chan net.Conn), closed: make(chan struct{})}
}

// put hands nc to Accept; false if the listener is closed (the caller
// closes nc).
func (l *connListener) put(nc net.Conn) bool {
	select {
	case l.ch <- nc:
		return true
	case <-l.closed:
		return false
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case nc := <-l.ch:
		return nc, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *connListener) Addr() net.Addr { return l.addr }
