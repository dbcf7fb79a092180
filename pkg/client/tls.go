package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/stratalog/strata/pkg/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// TLS makes every connection of the client (to the brokers it was given
// and to those it learns from metadata) use TLS with cfg, which is
// copied. A cfg with no ServerName checks each broker's certificate
// against the host of the address dialled; RootCAs nil means the system's
// roots. Without TLS or TLSFiles the client connects in plaintext.
func TLS(cfg *tls.Config) Opt {
	return func(c *config) {
		if cfg == nil {
			c.fail("TLS: nil config")
			return
		}
		c.tls = cfg.Clone()
	}
}

// TLSFiles is TLS with a configuration read from PEM files: f.CA is the
// cluster's CA (empty: the system's roots), f.Cert and f.Key a client
// certificate for brokers that ask for one. The files are read again when
// they change, so a renewed certificate is used from the next connection
// on. serverName, if not empty, is the name every broker's certificate
// must carry instead of the host dialled.
func TLSFiles(f tlsconfig.Files, serverName string) Opt {
	return func(c *config) {
		cfg, err := f.Client(serverName)
		if err != nil {
			c.fail("TLSFiles: %v", err)
			return
		}
		c.tls = cfg
	}
}

// TLSErrorKind says why a connection's TLS failed, so that a caller can
// say what to change.
type TLSErrorKind int

const (
	// TLSFailed is any other handshake failure.
	TLSFailed TLSErrorKind = iota
	// TLSUnknownAuthority: the broker's certificate is not signed by a CA
	// the client trusts (pass the cluster's CA: TLSFiles' CA).
	TLSUnknownAuthority
	// TLSWrongName: the broker's certificate does not name the host
	// dialled (or the server name asked for).
	TLSWrongName
	// TLSExpired: the broker's certificate has expired or is not valid
	// yet.
	TLSExpired
	// TLSClientCertRequired: the broker asks for a client certificate and
	// the client has none.
	TLSClientCertRequired
	// TLSClientCertRejected: the broker refused the client's certificate
	// (signed by a CA it does not trust, expired, or unusable).
	TLSClientCertRejected
	// TLSNotSpoken: the client uses TLS and the broker's port speaks
	// plaintext.
	TLSNotSpoken
	// TLSRequired: the client connects in plaintext and the broker's
	// port speaks TLS.
	TLSRequired
)

// TLSError is a connection to a broker that failed because of TLS: a
// handshake that failed, or a client and a listener that disagree about
// using TLS at all. No retry helps: the client's or the broker's TLS
// settings must change. Calls return it instead of an UNAVAILABLE error.
type TLSError struct {
	Addr string // the broker's address
	Kind TLSErrorKind
	Err  error // the handshake's error, if any
}

func (e *TLSError) Error() string {
	switch e.Kind {
	case TLSRequired:
		return fmt.Sprintf("the broker at %s expects TLS and this client connects in plaintext", e.Addr)
	case TLSNotSpoken:
		return fmt.Sprintf("TLS handshake with %s failed: the broker's port does not speak TLS (plaintext listener)", e.Addr)
	}
	return fmt.Sprintf("TLS handshake with %s failed: %s", e.Addr, e.reason())
}

func (e *TLSError) reason() string {
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	switch {
	case e.Kind == TLSUnknownAuthority:
		return "certificate signed by unknown authority"
	case e.Kind == TLSWrongName && errors.As(e.Err, &hn):
		names := append([]string(nil), hn.Certificate.DNSNames...)
		for _, ip := range hn.Certificate.IPAddresses {
			names = append(names, ip.String())
		}
		return fmt.Sprintf("the broker's certificate is for %s, not %s", strings.Join(names, ", "), hn.Host)
	case e.Kind == TLSExpired && errors.As(e.Err, &ci):
		if time.Now().Before(ci.Cert.NotBefore) {
			return fmt.Sprintf("the broker's certificate is not valid until %s (is this machine's clock right?)", ci.Cert.NotBefore.UTC().Format(time.RFC3339))
		}
		return fmt.Sprintf("the broker's certificate expired at %s", ci.Cert.NotAfter.UTC().Format(time.RFC3339))
	case e.Kind == TLSClientCertRequired:
		return "the broker requires a client certificate"
	case e.Kind == TLSClientCertRejected:
		return "the broker refused the client certificate: " + strings.TrimPrefix(e.Err.Error(), "remote error: tls: ")
	}
	if e.Err == nil {
		return "unknown reason"
	}
	return e.Err.Error()
}

func (e *TLSError) Unwrap() error { return e.Err }

// classify names a handshake error's kind; ok is false for errors that
// are not about TLS settings (the connection was cut, the broker went
// away) and that a retry may get past.
func classify(err error) (kind TLSErrorKind, ok bool) {
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	var rh tls.RecordHeaderError
	switch {
	case errors.As(err, &ua):
		return TLSUnknownAuthority, true
	case errors.As(err, &hn):
		return TLSWrongName, true
	case errors.As(err, &ci) && ci.Reason == x509.Expired:
		return TLSExpired, true
	case errors.As(err, &rh):
		return TLSNotSpoken, true
	case errors.As(err, new(*tls.CertificateVerificationError)):
		return TLSFailed, true
	}
	// Alerts the server sends after the client's side of a TLS 1.3
	// handshake is done reach the client as the first read's error, which
	// gRPC passes on as text.
	return alertKind(err.Error())
}

func alertKind(msg string) (TLSErrorKind, bool) {
	switch {
	case strings.Contains(msg, "tls: certificate required"):
		return TLSClientCertRequired, true
	case strings.Contains(msg, "tls: unknown certificate authority"),
		strings.Contains(msg, "tls: bad certificate"),
		strings.Contains(msg, "tls: expired certificate"),
		strings.Contains(msg, "tls: unsupported certificate"),
		strings.Contains(msg, "tls: revoked certificate"):
		return TLSClientCertRejected, true
	case strings.Contains(msg, "first record does not look like a TLS handshake"):
		return TLSNotSpoken, true
	case strings.Contains(msg, "remote error: tls: "):
		return TLSFailed, true
	}
	return 0, false
}

// transport returns the dial options that make addr's connection plain or
// TLS, and that turn its TLS failures into *TLSError.
func (c *Client) transport(addr string) []grpc.DialOption {
	w := &tlsWatch{addr: addr, tls: c.cfg.tls}
	var creds credentials.TransportCredentials = insecure.NewCredentials()
	if c.cfg.tls != nil {
		creds = &watchedCreds{TransportCredentials: credentials.NewTLS(c.cfg.tls), cfg: c.cfg.tls, w: w}
	}
	return []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return w.explain(invoker(ctx, method, req, reply, cc, opts...))
		}),
		grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			s, err := streamer(ctx, desc, cc, method, opts...)
			return s, w.explain(err)
		}),
	}
}

// tlsWatch remembers why one broker's connection last failed at TLS, so
// that a call failing with UNAVAILABLE can say so.
type tlsWatch struct {
	addr string
	tls  *tls.Config // nil: plaintext

	mu       sync.Mutex
	last     *TLSError // the last handshake's failure; nil after a success
	probedAt time.Time // plaintext: when the port was last probed for TLS
	speaks   bool      // and whether it spoke TLS
}

// watchedCreds records each handshake's outcome in its tlsWatch.
type watchedCreds struct {
	credentials.TransportCredentials
	cfg *tls.Config
	w   *tlsWatch
}

func (t *watchedCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	creds := t.TransportCredentials
	if t.cfg.ServerName == "" && t.cfg.VerifyConnection != nil {
		// A verifier of its own (tlsconfig's, which follows a reloaded
		// CA) is told the host dialled even when it is an IP address,
		// which crypto/tls leaves out of the connection state: without
		// it, no name would be checked.
		host, _, err := net.SplitHostPort(authority)
		if err != nil {
			host = authority
		}
		cfg := t.cfg.Clone()
		verify := t.cfg.VerifyConnection
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if cs.ServerName == "" {
				cs.ServerName = host
			}
			return verify(cs)
		}
		creds = credentials.NewTLS(cfg)
	}
	conn, info, err := creds.ClientHandshake(ctx, authority, raw)
	var te *TLSError
	if err != nil {
		if kind, ok := classify(err); ok {
			te = &TLSError{Addr: t.w.addr, Kind: kind, Err: err}
			err = te
		}
	}
	t.w.mu.Lock()
	t.w.last = te
	t.w.mu.Unlock()
	return conn, info, err
}

func (t *watchedCreds) Clone() credentials.TransportCredentials {
	return &watchedCreds{TransportCredentials: t.TransportCredentials.Clone(), cfg: t.cfg, w: t.w}
}

// explain turns a call's UNAVAILABLE error into a *TLSError when TLS is
// why the broker could not be reached.
func (w *tlsWatch) explain(err error) error {
	if err == nil || status.Code(err) != codes.Unavailable {
		return err
	}
	msg := status.Convert(err).Message()
	if w.tls != nil {
		w.mu.Lock()
		last := w.last
		w.mu.Unlock()
		if last != nil {
			return last
		}
		// The broker refused this client's certificate after the client's
		// side of the handshake was done (TLS 1.3): its alert is the
		// first thing read.
		if i := strings.Index(msg, "remote error: tls: "); i >= 0 {
			if kind, ok := alertKind(msg); ok {
				return &TLSError{Addr: w.addr, Kind: kind, Err: errors.New(strings.TrimRight(msg[i:], `"`))}
			}
		}
		return err
	}
	// Plaintext: a TLS listener closes the connection at gRPC's preface
	// without a word, as a broker going away would. Ask the port whether
	// it speaks TLS.
	if strings.Contains(msg, "server preface") && w.probe() {
		return &TLSError{Addr: w.addr, Kind: TLSRequired}
	}
	return err
}

// probeEvery bounds how often a failing plaintext connection's port is
// probed for TLS.
const probeEvery = 5 * time.Second

// probe reports whether the broker's port answers a TLS ClientHello with
// a handshake (whatever its certificate).
func (w *tlsWatch) probe() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if time.Since(w.probedAt) < probeEvery {
		return w.speaks
	}
	d := &net.Dialer{Timeout: 2 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", w.addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // a probe: no data is sent
	w.probedAt = time.Now()
	if err == nil {
		conn.Close()
		w.speaks = true
	} else {
		// A TLS server that refused us (an alert) still speaks TLS.
		w.speaks = strings.Contains(err.Error(), "remote error: tls: ")
	}
	return w.speaks
}
