package transport

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// The handshake: every connection to the inter-broker listener proves,
// both ways, that its two ends belong to one cluster before the acceptor
// reads a frame. It costs one round trip per new connection (plus TLS's
// own when TLS is on); connections are long-lived.
//
// With Security.ServerTLS and ClientTLS set, the TCP connection is first
// wrapped in TLS: the acceptor requires a client certificate, both ends
// verify the other's against the cluster's CA, the dialer checks the
// acceptor's certificate names the host it dialled, and the acceptor
// checks the dialer's names the host of the address its hello claims.
// Then, TLS or not, on the connection:
//
//	dialer -> acceptor, the hello:
//	+--------------+------------+------------+--------------+------+---------------+
//	| magic "SRFT" | version u8 | purpose u8 | addr len u16 | addr | nonce D (32)  |
//	|   (4 bytes)  |   (= 3)    | 1 raft,    |              |      |               |
//	|              |            | 2 gRPC     |              |      |               |
//	+--------------+------------+------------+--------------+------+---------------+
//	acceptor -> dialer, the challenge:
//	+---------------+----------------------------------------------+
//	| nonce A (32)  | mac A (32) = HMAC-SHA256(secret, "A" | t)     |
//	+---------------+----------------------------------------------+
//	dialer -> acceptor, the proof:
//	+----------------------------------------------+
//	| mac D (32) = HMAC-SHA256(secret, "D" | t)     |
//	+----------------------------------------------+
//
//	t = "strata-interbroker-v3" | purpose u8 | addr len u16 | addr | nonce D | nonce A
//
// addr is the dialer's own listen address (its raft.ServerAddress), which
// raft knows it by; the MACs bind it, the purpose and both fresh nonces,
// and the leading letter is the direction, so that neither MAC can be
// replayed on another connection or reflected back. The secret never
// crosses the wire. The dialer checks mac A before it sends its proof (an
// acceptor without the secret learns nothing it can use); the acceptor
// checks mac D, in constant time, before it reads anything else, and
// closes the connection on any failure. Nothing answers a failure on the
// wire: the peer sees its connection closed.
//
// An empty Security.Secret is the empty HMAC key: still a handshake, which
// a peer with a secret fails (tests of this package use it). The secret
// authenticates the connection's start; without TLS the frames after it
// are neither encrypted nor protected from someone who can alter traffic
// on the path: use TLS for that.
//
// Every constant here is part of the format (docs/format/raft.md).
const (
	helloMagic   = "SRFT"
	helloVersion = 3
	helloMaxAddr = 1024 // a listen address longer than this is not one
	nonceSize    = 32
	macSize      = sha256.Size
	macLabel     = "strata-interbroker-v3"

	purposeRaft = 1 // raft frames (frame.go)
	purposeGRPC = 2 // a gRPC connection for the internal service (Mux.Listener)
)

// ErrAuth: a peer failed the handshake: it does not have the cluster
// secret, or its certificate is not from the cluster's CA or does not name
// its address. The connection is closed. A retry does not help until the
// peer is configured like the rest of the cluster.
var ErrAuth = errors.New("transport: inter-broker authentication failed")

// Security says how the Mux's connections prove the cluster's membership
// (handshake.go). The zero value authenticates with the empty key: for
// tests only.
type Security struct {
	// Secret is the cluster secret, the HMAC key of the handshake. Every
	// broker of a cluster has the same.
	Secret []byte
	// ServerTLS, if set, wraps accepted connections in TLS. It must
	// require and verify client certificates (tlsconfig.Files.Server
	// with RequireClientCert).
	ServerTLS *tls.Config
	// ClientTLS, if set, returns the TLS config to dial a peer with:
	// serverName is the host of the peer's address, which its
	// certificate must name (tlsconfig.Files.Client). Called per dial.
	ClientTLS func(serverName string) (*tls.Config, error)
}

// hello is what the dialer sends first.
type hello struct {
	purpose byte
	addr    raft.ServerAddress
	nonce   [nonceSize]byte
}

// appendHello appends h to dst.
func appendHello(dst []byte, h hello) []byte {
	dst = append(dst, helloMagic...)
	dst = append(dst, helloVersion, h.purpose)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(h.addr)))
	dst = append(dst, h.addr...)
	return append(dst, h.nonce[:]...)
}

// readHello reads a hello.
func readHello(r io.Reader) (hello, error) {
	var h hello
	var b [len(helloMagic) + 1 + 1 + 2]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return h, err
	}
	if string(b[:4]) != helloMagic {
		return h, fmt.Errorf("%w: bad hello magic %q", errMalformed, b[:4])
	}
	if b[4] != helloVersion {
		return h, fmt.Errorf("%w: hello version %d, want %d", errMalformed, b[4], helloVersion)
	}
	h.purpose = b[5]
	if h.purpose != purposeRaft && h.purpose != purposeGRPC {
		return h, fmt.Errorf("%w: hello purpose %d", errMalformed, h.purpose)
	}
	n := int(binary.BigEndian.Uint16(b[6:]))
	if n == 0 || n > helloMaxAddr {
		return h, fmt.Errorf("%w: hello address of %d bytes", errMalformed, n)
	}
	rest := make([]byte, n+nonceSize)
	if _, err := io.ReadFull(r, rest); err != nil {
		return h, err
	}
	h.addr = raft.ServerAddress(rest[:n])
	copy(h.nonce[:], rest[n:])
	return h, nil
}

// handshakeMAC is the MAC of one direction ('A' acceptor, 'D' dialer).
func handshakeMAC(secret []byte, dir byte, h hello, nonceA []byte) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte{dir})
	mac.Write([]byte(macLabel))
	mac.Write([]byte{h.purpose})
	var l [2]byte
	binary.BigEndian.PutUint16(l[:], uint16(len(h.addr)))
	mac.Write(l[:])
	mac.Write([]byte(h.addr))
	mac.Write(h.nonce[:])
	mac.Write(nonceA)
	return mac.Sum(nil)
}

// clientHandshake runs the dialer's side on nc (TCP), claiming self, and
// returns the connection to use (TLS-wrapped when sec says so). It closes
// nc on failure. An error wrapping ErrAuth means the acceptor failed.
func clientHandshake(nc net.Conn, peer string, self raft.ServerAddress, purpose byte, sec Security, timeout time.Duration) (net.Conn, error) {
	nc.SetDeadline(time.Now().Add(timeout))
	if sec.ClientTLS != nil {
		host, _, err := net.SplitHostPort(peer)
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("dial %s: %w", peer, err)
		}
		cfg, err := sec.ClientTLS(host)
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("%w: tls config for %s: %w", ErrAuth, peer, err)
		}
		if cfg.ServerName == "" {
			cfg.ServerName = host
		}
		tc := tls.Client(nc, cfg)
		if err := tc.Handshake(); err != nil {
			nc.Close()
			if isNetErr(err) {
				return nil, fmt.Errorf("tls handshake with %s: %w", peer, err)
			}
			return nil, fmt.Errorf("%w: tls handshake with %s: %w", ErrAuth, peer, err)
		}
		nc = tc
	}
	h := hello{purpose: purpose, addr: self}
	rand.Read(h.nonce[:])
	if _, err := nc.Write(appendHello(nil, h)); err != nil {
		nc.Close()
		return nil, fmt.Errorf("hello to %s: %w", peer, err)
	}
	var ch [nonceSize + macSize]byte
	if _, err := io.ReadFull(nc, ch[:]); err != nil {
		nc.Close()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			// Connected but silent: a paused or stuck peer.
			return nil, fmt.Errorf("%w: no challenge from %s: %w", ErrTimeout, peer, err)
		}
		// Closed at our hello: the acceptor refused our address or
		// certificate, or is no Strata broker of this version.
		return nil, fmt.Errorf("%w: %s closed the connection at the hello (is it a broker of this cluster, with the same inter-broker settings?): %w", ErrAuth, peer, err)
	}
	nonceA, macA := ch[:nonceSize], ch[nonceSize:]
	if !hmac.Equal(macA, handshakeMAC(sec.Secret, 'A', h, nonceA)) {
		nc.Close()
		return nil, fmt.Errorf("%w: %s did not prove the cluster secret (another --cluster-secret?)", ErrAuth, peer)
	}
	if _, err := nc.Write(handshakeMAC(sec.Secret, 'D', h, nonceA)); err != nil {
		nc.Close()
		return nil, fmt.Errorf("proof to %s: %w", peer, err)
	}
	nc.SetDeadline(time.Time{})
	return nc, nil
}

// serverHandshake runs the acceptor's side on nc and returns the dialer's
// hello and the connection to use. It closes nc on failure. An error that
// is not errSilent is an authentication failure worth reporting.
func serverHandshake(nc net.Conn, sec Security, timeout time.Duration) (hello, net.Conn, error) {
	nc.SetDeadline(time.Now().Add(timeout))
	fail := func(err error) (hello, net.Conn, error) {
		nc.Close()
		return hello{}, nil, err
	}
	if sec.ServerTLS != nil {
		tc := tls.Server(nc, sec.ServerTLS)
		if err := tc.Handshake(); err != nil {
			if errors.Is(err, io.EOF) {
				return fail(errSilent) // a bare probe (peerdown.go)
			}
			return fail(fmt.Errorf("%w: tls handshake: %w", ErrAuth, err))
		}
		nc = tc
	}
	h, err := readHello(nc)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return fail(errSilent) // connected and closed at once: a probe
		}
		return fail(fmt.Errorf("%w: hello: %w", ErrAuth, err))
	}
	if tc, ok := nc.(*tls.Conn); ok {
		if err := certNamesAddr(tc.ConnectionState(), h.addr); err != nil {
			return fail(fmt.Errorf("%w: %w", ErrAuth, err))
		}
	}
	var ch [nonceSize + macSize]byte
	rand.Read(ch[:nonceSize])
	copy(ch[nonceSize:], handshakeMAC(sec.Secret, 'A', h, ch[:nonceSize]))
	if _, err := nc.Write(ch[:]); err != nil {
		return fail(fmt.Errorf("%w: challenge to %s: %w", ErrAuth, h.addr, err))
	}
	var proof [macSize]byte
	if _, err := io.ReadFull(nc, proof[:]); err != nil {
		return fail(fmt.Errorf("%w: %s did not answer the challenge (another --cluster-secret?): %w", ErrAuth, h.addr, err))
	}
	if !hmac.Equal(proof[:], handshakeMAC(sec.Secret, 'D', h, ch[:nonceSize])) {
		return fail(fmt.Errorf("%w: %s did not prove the cluster secret (another --cluster-secret?)", ErrAuth, h.addr))
	}
	nc.SetDeadline(time.Time{})
	return h, nc, nil
}

// errSilent: a connection closed before saying anything (peerdown.go's
// probe): not an authentication failure.
var errSilent = errors.New("transport: connection closed before its hello")

// certNamesAddr checks that the dialer's verified certificate names the
// host of the address it claims to be: a certificate from the cluster's
// CA for another broker or a client cannot pass for this one.
func certNamesAddr(cs tls.ConnectionState, addr raft.ServerAddress) error {
	if len(cs.VerifiedChains) == 0 || len(cs.PeerCertificates) == 0 {
		return errors.New("no verified certificate")
	}
	host, _, err := net.SplitHostPort(string(addr))
	if err != nil {
		return fmt.Errorf("hello address %q: %w", addr, err)
	}
	if err := cs.PeerCertificates[0].VerifyHostname(host); err != nil {
		return fmt.Errorf("certificate of %s does not name its host (broker certificates need their advertised host as a SAN): %w", addr, err)
	}
	return nil
}

func isNetErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// authLogEvery: one warning per remote host this often, however many of
// its connections fail.
const authLogEvery = time.Minute

// authLog rate-limits the warnings about failed handshakes.
type authLog struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// authFailed counts a failed handshake with remote and logs it at warn,
// once per remote host per authLogEvery.
func (m *Mux) authFailed(remote string, outbound bool, err error) {
	m.authFailures.Add(1)
	host, _, serr := net.SplitHostPort(remote)
	if serr != nil {
		host = remote
	}
	now := time.Now()
	m.authLog.mu.Lock()
	if m.authLog.last == nil || len(m.authLog.last) > 4096 {
		m.authLog.last = make(map[string]time.Time)
	}
	if now.Sub(m.authLog.last[host]) < authLogEvery {
		m.authLog.mu.Unlock()
		return
	}
	m.authLog.last[host] = now
	m.authLog.mu.Unlock()
	m.log.Warn("inter-broker: peer failed authentication; its connection is closed (more failures from this host in the next minute are counted in strata_interbroker_auth_failures_total, not logged)",
		zap.String("remote", remote), zap.Bool("outbound", outbound), zap.Error(err))
}

// AuthFailures counts failed inter-broker handshakes, both ways.
func (m *Mux) AuthFailures() uint64 { return m.authFailures.Load() }
