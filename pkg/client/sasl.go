package client

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/xdg-go/scram"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
)

// SCRAM mechanisms for SASL.
const (
	ScramSHA256 = "SCRAM-SHA-256"
	ScramSHA512 = "SCRAM-SHA-512"
)

// SASL authenticates every connection with SASL/SCRAM as user, for brokers
// whose listener is SASL_PLAINTEXT or SASL_SSL. mechanism is ScramSHA256 or
// ScramSHA512 (empty: ScramSHA256).
//
// Each connection runs the SCRAM exchange (the broker's Authenticate call)
// before its first request and sends the session token it gets on every
// call. It authenticates again by itself when the token nears its expiry,
// and once when a broker refuses the token (the broker restarted). The
// password stays in this process: SCRAM sends a proof, never the password.
func SASL(mechanism, user, password string) Opt {
	return func(c *config) {
		if mechanism == "" {
			mechanism = ScramSHA256
		}
		hash, ok := scramHash(mechanism)
		if !ok {
			c.fail("SASL: unknown mechanism %q: use %s or %s", mechanism, ScramSHA256, ScramSHA512)
			return
		}
		if user == "" {
			c.fail("SASL: empty user name")
			return
		}
		sc, err := hash.NewClient(user, password, "")
		if err != nil {
			c.fail("SASL: %v", err)
			return
		}
		c.sasl = &saslConfig{mechanism: mechanism, user: user, client: sc}
	}
}

func scramHash(mechanism string) (scram.HashGeneratorFcn, bool) {
	switch mechanism {
	case ScramSHA256:
		return scram.SHA256, true
	case ScramSHA512:
		return scram.SHA512, true
	}
	return nil, false
}

type saslConfig struct {
	mechanism string
	user      string
	client    *scram.Client // caches the salted password per salt
}

// saslSession is one connection's authentication: gRPC per-RPC credentials
// that hold the connection's token, and an interceptor that authenticates
// again when the broker refuses it.
type saslSession struct {
	cfg *saslConfig
	cc  *grpc.ClientConn // set right after the connection is made
	mu  sync.Mutex       // held during an exchange: one at a time
	tok string
	exp time.Time
}

func newSASLSession(cfg *saslConfig) *saslSession { return &saslSession{cfg: cfg} }

// dialOptions wires the session into a connection.
func (s *saslSession) dialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithPerRPCCredentials(s), grpc.WithChainUnaryInterceptor(s.retryUnauthenticated)}
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (s *saslSession) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	if ri, ok := credentials.RequestInfoFromContext(ctx); ok && ri.Method == v1.Strata_Authenticate_FullMethodName {
		return nil, nil
	}
	tok, err := s.token(ctx)
	if err != nil {
		return nil, err
	}
	return map[string]string{"authorization": "Bearer " + tok}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials:
// SASL_PLAINTEXT is allowed (SCRAM never sends the password).
func (s *saslSession) RequireTransportSecurity() bool { return false }

// token returns a token valid for a while yet, authenticating if needed.
func (s *saslSession) token(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Renew when less than a tenth of the token's life, or 5s, is left.
	if s.tok != "" && time.Until(s.exp) > 5*time.Second {
		return s.tok, nil
	}
	tok, exp, err := s.authenticate(ctx)
	if err != nil {
		return "", err
	}
	s.tok, s.exp = tok, exp
	return tok, nil
}

func (s *saslSession) forget(tok string) {
	s.mu.Lock()
	if s.tok == tok {
		s.tok = ""
	}
	s.mu.Unlock()
}

// authenticate runs the two-call SCRAM exchange.
func (s *saslSession) authenticate(ctx context.Context) (string, time.Time, error) {
	cl := v1.NewStrataClient(s.cc)
	conv := s.cfg.client.NewConversation()
	first, err := conv.Step("")
	if err != nil {
		return "", time.Time{}, fmt.Errorf("client: SASL: %w", err)
	}
	r1, err := cl.Authenticate(ctx, &v1.AuthenticateRequest{Mechanism: s.cfg.mechanism, Message: []byte(first)})
	if err != nil {
		return "", time.Time{}, authError(err)
	}
	final, err := conv.Step(string(r1.Message))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("client: SASL: bad server-first message: %w", err)
	}
	r2, err := cl.Authenticate(ctx, &v1.AuthenticateRequest{Session: r1.Session, Message: []byte(final)})
	if err != nil {
		return "", time.Time{}, authError(err)
	}
	// The server's signature proves it knows the user's keys.
	if _, err := conv.Step(string(r2.Message)); err != nil || !conv.Valid() {
		return "", time.Time{}, fmt.Errorf("client: SASL: the broker's SCRAM signature is wrong (not the cluster it claims to be?): %v", err)
	}
	exp := time.UnixMilli(r2.TokenExpiryUnixMs)
	// Renew before the broker's clock says it expired, with margin.
	if life := time.Until(exp); life > 0 {
		exp = time.Now().Add(life * 9 / 10)
	}
	return r2.Token, exp, nil
}

// authError is what a failed exchange makes the call that needed it fail
// with. gRPC passes a status error from per-RPC credentials through only
// for some codes (gRFC A54): the broker's Unauthenticated (with its
// message) and transport errors stay as they are, so that retries see an
// unreachable broker as one; anything else becomes Unauthenticated.
func authError(err error) error {
	switch status.Code(err) {
	case codes.Unauthenticated, codes.Unavailable, codes.Canceled, codes.DeadlineExceeded, codes.ResourceExhausted:
		return err
	}
	return status.Errorf(codes.Unauthenticated, "SASL authentication: %v", apierr.FromStatus(err))
}

// retryUnauthenticated authenticates again, once, when a broker refuses a
// token it gave (it restarted, or the token expired on its clock first).
func (s *saslSession) retryUnauthenticated(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	if method == v1.Strata_Authenticate_FullMethodName || status.Code(err) != codes.Unauthenticated {
		return err
	}
	s.mu.Lock()
	tok := s.tok
	s.mu.Unlock()
	if tok == "" {
		return err
	}
	s.forget(tok)
	return invoker(ctx, method, req, reply, cc, opts...)
}

func scramKeyFactors(salt []byte, iterations int) scram.KeyFactors {
	return scram.KeyFactors{Salt: string(salt), Iters: iterations}
}
