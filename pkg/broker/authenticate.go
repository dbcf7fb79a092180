package broker

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"time"

	"github.com/xdg-go/scram"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/metadata"
)

// Authenticate runs a SASL/SCRAM exchange (RFC 5802) in two calls and
// gives a session token (authn.go):
//
//	call 1: mechanism, client-first  -> session, server-first
//	call 2: session,   client-final  -> server-final, token, expiry, principal
//
// An unknown user gets a made-up salt and the exchange fails at the proof,
// exactly as a wrong password does: the answer, AUTHENTICATION_FAILED
// "authentication failed for user X", does not tell which (no user
// enumeration). Failures are counted in
// strata_authentication_failures_total and logged at info with the remote
// address.
//
// Errors: INVALID_REQUEST on a listener that does not take SASL or for an
// unknown mechanism; AUTHENTICATION_FAILED for a wrong password, an
// unknown user, an unknown or expired session (call 2 more than
// exchangeTimeout after call 1) or a malformed message; UNAVAILABLE when
// too many exchanges are in progress.
func (b *Broker) Authenticate(ctx context.Context, req *v1.AuthenticateRequest) (*v1.AuthenticateResponse, error) {
	resp, err := b.authenticateStep(ctx, req)
	return resp, apierr.ToStatus(err)
}

// exchange is a SCRAM conversation between its two calls.
type exchange struct {
	conv    *scram.ServerConversation
	expires time.Time
}

const (
	// exchangeTimeout bounds the time between the two calls.
	exchangeTimeout = 30 * time.Second
	// maxExchanges bounds the exchanges in progress on a broker.
	maxExchanges = 10000
)

func (b *Broker) authenticateStep(ctx context.Context, req *v1.AuthenticateRequest) (*v1.AuthenticateResponse, error) {
	l := b.requestListener(ctx)
	if !l.SASL() {
		return nil, apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_REQUEST,
			"listener %s (%s) does not take SASL authentication: connect without --user, or to a SASL_PLAINTEXT or SASL_SSL listener", l.Name, l.Protocol)
	}
	now := time.Now()
	if req.Session == "" {
		return b.startExchange(req, now)
	}
	b.authn.mu.Lock()
	ex, ok := b.authn.mu.pending[req.Session]
	delete(b.authn.mu.pending, req.Session)
	b.authn.mu.Unlock()
	if !ok || !now.Before(ex.expires) {
		err := apierr.New(v1.ErrorCode_ERROR_CODE_AUTHENTICATION_FAILED, "SCRAM exchange unknown or older than %s: start again", exchangeTimeout)
		b.logAuthFailure(ctx, "", err)
		return nil, err
	}
	user := ex.conv.Username()
	final, err := ex.conv.Step(string(req.Message))
	if err != nil || !ex.conv.Valid() {
		b.logAuthFailure(ctx, user, err)
		return nil, apierr.New(v1.ErrorCode_ERROR_CODE_AUTHENTICATION_FAILED,
			"authentication failed for user %s: check --user and --password (or STRATA_USER, STRATA_PASSWORD)", user)
	}
	tok, exp := b.authn.addSession(user, now)
	b.authn.successes.Inc()
	return &v1.AuthenticateResponse{Message: []byte(final), Token: tok, TokenExpiryUnixMs: exp.UnixMilli(), Principal: "User:" + user}, nil
}

func (b *Broker) startExchange(req *v1.AuthenticateRequest, now time.Time) (*v1.AuthenticateResponse, error) {
	var hash scram.HashGeneratorFcn
	switch req.Mechanism {
	case metadata.ScramSHA256:
		hash = scram.SHA256
	case metadata.ScramSHA512:
		hash = scram.SHA512
	default:
		return nil, apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_REQUEST,
			"unknown SASL mechanism %q: use SCRAM-SHA-256 or SCRAM-SHA-512 (--sasl-mechanism)", req.Mechanism)
	}
	mech := req.Mechanism
	srv, err := hash.NewServer(func(user string) (scram.StoredCredentials, error) {
		if c, ok := b.meta.ScramCredential(user, mech); ok {
			return scram.StoredCredentials{KeyFactors: scram.KeyFactors{Salt: string(c.Salt), Iters: c.Iterations},
				StoredKey: c.StoredKey, ServerKey: c.ServerKey}, nil
		}
		return b.fakeCredential(user, mech), nil
	})
	if err != nil {
		return nil, err
	}
	conv := srv.NewConversation()
	first, err := conv.Step(string(req.Message))
	if err != nil {
		return nil, apierr.New(v1.ErrorCode_ERROR_CODE_AUTHENTICATION_FAILED, "malformed SCRAM client-first message: %v", err)
	}
	sess := newToken()
	b.authn.mu.Lock()
	defer b.authn.mu.Unlock()
	if len(b.authn.mu.pending) >= maxExchanges {
		for s, ex := range b.authn.mu.pending {
			if !now.Before(ex.expires) {
				delete(b.authn.mu.pending, s)
			}
		}
		if len(b.authn.mu.pending) >= maxExchanges {
			return nil, apierr.New(v1.ErrorCode_ERROR_CODE_UNAVAILABLE, "%d SCRAM exchanges in progress on this broker: retry", maxExchanges)
		}
	}
	b.authn.mu.pending[sess] = &exchange{conv: conv, expires: now.Add(exchangeTimeout)}
	return &v1.AuthenticateResponse{Session: sess, Message: []byte(first)}, nil
}

// fakeCredential is what an unknown user is checked against: a salt that
// is the same at every attempt (so that it does not give the user away)
// and keys no password matches.
func (b *Broker) fakeCredential(user, mech string) scram.StoredCredentials {
	mac := hmac.New(sha256.New, b.authn.fakeKey[:])
	mac.Write([]byte(mech + "\x00" + user))
	sum := mac.Sum(nil)
	n := metadata.ScramKeyLen(mech)
	key := make([]byte, n)
	copy(key, sum)
	return scram.StoredCredentials{KeyFactors: scram.KeyFactors{Salt: string(sum[:16]), Iters: metadata.MinScramIterations},
		StoredKey: key, ServerKey: key}
}
