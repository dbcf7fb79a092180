package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/tlsconfig"
)

// Authentication: who is calling. Every client API request gets a
// principal before any handler (or the authorizer, authz.go) runs:
//
//  1. On a SASL listener (SASL_PLAINTEXT, SASL_SSL), the session token the
//     client got from Authenticate (authenticate.go), sent as
//     "authorization: Bearer <token>" metadata: "User:<name>". No token, an
//     expired one, one this broker does not know (it restarted, or the
//     client came from another broker) or one whose user was deleted is
//     refused with AUTHENTICATION_FAILED (gRPC Unauthenticated); the
//     client library authenticates again by itself.
//  2. On a TLS listener, a verified client certificate: "User:<CN>"
//     (tlsconfig.Principal), as Kafka's default principal builder.
//  3. Otherwise "User:ANONYMOUS".
//
// Tokens are per broker and in memory, valid for --sasl-session-ttl
// (default 1h): a client authenticates once per broker connection and
// again when its token nears expiry. Deleting a user ends its sessions at
// their next request. Kafka's equivalent is a connection authenticated
// once (and re-authenticated after connections.max.reauth.ms); gRPC's
// connections are not visible to handlers, so the session rides on a
// token instead.
//
// The broker-to-broker service (StrataInternal) is not authenticated
// here: its listener authenticates brokers (the cluster secret or mTLS).

// Anonymous is the principal of a client that did not authenticate.
const Anonymous = "User:ANONYMOUS"

// principal is who a request comes from, and from where.
type principal struct {
	Name string // "User:alice"
	Host string // the client's IP address
}

type principalKey struct{}

func withPrincipal(ctx context.Context, p principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// principalFrom returns the request's principal; an in-process call that
// went through no interceptor counts as anonymous from nowhere.
func principalFrom(ctx context.Context) principal {
	if p, ok := ctx.Value(principalKey{}).(principal); ok {
		return p
	}
	return principal{Name: Anonymous}
}

// session is what a token stands for.
type session struct {
	user    string // the SCRAM user name
	expires time.Time
}

// authn holds the sessions, the SCRAM exchanges in progress and their
// counters.
type authn struct {
	ttl time.Duration
	mu  struct {
		sync.Mutex
		tokens    map[string]session
		pending   map[string]*exchange
		lastSweep int
	}
	// fakeKey derives the fake credentials of unknown users (authenticate.go).
	fakeKey [32]byte

	failures  prometheus.Counter
	successes prometheus.Counter
}

func newAuthn(ttl time.Duration, reg prometheus.Registerer) *authn {
	a := &authn{
		ttl: ttl,
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_authentication_failures_total",
			Help: "SASL/SCRAM authentications refused (wrong password, unknown user, bad exchange).",
		}),
		successes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_authentication_successes_total", Help: "SASL/SCRAM authentications that got a session token.",
		}),
	}
	a.mu.tokens = map[string]session{}
	a.mu.pending = map[string]*exchange{}
	_, _ = rand.Read(a.fakeKey[:])
	reg.MustRegister(a.failures, a.successes)
	return a
}

// newToken makes a random 256-bit token in hex.
func newToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// addSession stores a new session and returns its token; expired sessions
// are swept whenever the map has doubled since the last sweep.
func (a *authn) addSession(user string, now time.Time) (string, time.Time) {
	tok, exp := newToken(), now.Add(a.ttl)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.mu.tokens[tok] = session{user: user, expires: exp}
	if n := len(a.mu.tokens); n > 2*a.mu.lastSweep+64 {
		for t, s := range a.mu.tokens {
			if !now.Before(s.expires) {
				delete(a.mu.tokens, t)
			}
		}
		a.mu.lastSweep = len(a.mu.tokens)
	}
	return tok, exp
}

// session returns the live session of a token.
func (a *authn) session(tok string, now time.Time) (session, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.mu.tokens[tok]
	if ok && !now.Before(s.expires) {
		delete(a.mu.tokens, tok)
		return session{}, false
	}
	return s, ok
}

// requestListener is the listener a request came in on.
func (b *Broker) requestListener(ctx context.Context) *listener { return listenerFrom(ctx) }

const authHeader = "authorization"

func errNeedCredentials(l *listener) error {
	return apierr.New(v1.ErrorCode_ERROR_CODE_AUTHENTICATION_FAILED,
		"listener %s (%s) requires SASL/SCRAM authentication: pass --user and --password (or set STRATA_USER and STRATA_PASSWORD; client library: client.SASL)",
		l.Name, l.Protocol)
}

var errStaleToken = apierr.New(v1.ErrorCode_ERROR_CODE_AUTHENTICATION_FAILED,
	"session token expired or unknown to this broker: authenticate again (the client library and CLI do this by themselves)")

// authenticate finds the principal of a request (see the top of the file).
func (b *Broker) authenticate(ctx context.Context, method string) (principal, error) {
	p := principal{Name: Anonymous}
	if pr, ok := peer.FromContext(ctx); ok && pr.Addr != nil {
		p.Host = hostOf(pr.Addr)
	}
	l := b.requestListener(ctx)
	if l.SASL() {
		if method == v1.Strata_Authenticate_FullMethodName {
			return p, nil
		}
		tok := bearer(ctx)
		if tok == "" {
			return p, errNeedCredentials(l)
		}
		s, ok := b.authn.session(tok, time.Now())
		if !ok {
			return p, errStaleToken
		}
		if _, ok := b.meta.User(s.user); !ok {
			return p, errStaleToken
		}
		p.Name = "User:" + s.user
		return p, nil
	}
	if pr, ok := peer.FromContext(ctx); ok {
		if info, ok := pr.AuthInfo.(credentials.TLSInfo); ok {
			if name, ok := tlsconfig.Principal(info.State); ok {
				p.Name = name
			}
		}
	}
	return p, nil
}

func bearer(ctx context.Context) string {
	// ValueFromIncomingContext does not copy the whole metadata.
	for _, v := range metadata.ValueFromIncomingContext(ctx, authHeader) {
		if tok, ok := strings.CutPrefix(v, "Bearer "); ok {
			return tok
		}
	}
	return ""
}

func hostOf(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP.String()
	}
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}

func isInternalMethod(method string) bool {
	return strings.HasPrefix(method, "/"+v1.StrataInternal_ServiceDesc.ServiceName+"/")
}

// securityUnary authenticates and authorizes a client API call (authz.go),
// and filters what the call may list.
func (b *Broker) securityUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if isInternalMethod(info.FullMethod) {
		return h(ctx, req)
	}
	p, err := b.authenticate(ctx, info.FullMethod)
	if err != nil {
		return nil, apierr.ToStatus(err)
	}
	ctx = withPrincipal(ctx, p)
	if err := b.authorizeRequest(ctx, info.FullMethod, req); err != nil {
		return nil, apierr.ToStatus(err)
	}
	resp, err := h(ctx, req)
	if err == nil {
		b.filterResponse(ctx, req, resp)
	}
	return resp, err
}

// securityStream is securityUnary for streaming calls; their one request
// is checked when the handler receives it.
func (b *Broker) securityStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if isInternalMethod(info.FullMethod) {
		return h(srv, ss)
	}
	p, err := b.authenticate(ss.Context(), info.FullMethod)
	if err != nil {
		return apierr.ToStatus(err)
	}
	return h(srv, &authorizedStream{ServerStream: ss, ctx: withPrincipal(ss.Context(), p), b: b, method: info.FullMethod})
}

type authorizedStream struct {
	grpc.ServerStream
	ctx    context.Context
	b      *Broker
	method string
}

func (s *authorizedStream) Context() context.Context { return s.ctx }

func (s *authorizedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return apierr.ToStatus(s.b.authorizeRequest(s.ctx, s.method, m))
}

// logAuthFailure logs a refused authentication at info level.
func (b *Broker) logAuthFailure(ctx context.Context, user string, err error) {
	b.authn.failures.Inc()
	b.log.Info("authentication failed", zap.String("user", user), zap.String("remote", principalFrom(ctx).Host), zap.Error(err))
}
