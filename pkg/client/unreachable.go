package client

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
)

// UnreachableCause says why an address did not answer as a broker.
type UnreachableCause string

// The causes a user acts on differently.
const (
	CauseRefused    UnreachableCause = "connection refused" // nothing listens there: not started, stopped, or the wrong port
	CauseNoSuchHost UnreachableCause = "no such host"       // the name does not resolve from here
	CauseTimedOut   UnreachableCause = "timed out"          // no answer: a firewall, a wrong IP, a paused broker
	CauseNotStrata  UnreachableCause = "not a Strata API"   // something else answered: the HTTP port, the inter-broker port, another server
	CauseOther      UnreachableCause = "connection failed"  // anything else; Err has gRPC's words (TLS failures are a *TLSError)
)

// UnreachableError: a broker address from the client's broker list (not
// one the cluster advertised: AdvertisedUnreachableError) did not answer
// as a Strata broker. It unwraps to the UNAVAILABLE error, so a retry
// loop treats it as retriable, except for CauseNotStrata, which no retry
// fixes.
type UnreachableError struct {
	Addr  string
	Cause UnreachableCause
	Err   error
	// Others are the other addresses of the broker list that failed as
	// well, when FailFast gave up on all of them.
	Others []*UnreachableError
}

func (e *UnreachableError) Error() string {
	advice := ""
	switch e.Cause {
	case CauseRefused:
		advice = ": is a broker running there? (the API port is strata-broker's --api-addr or --listeners, 9290 by default)"
	case CauseNoSuchHost:
		advice = ": the host name does not resolve from here (a container name seen from outside its network? use the address a broker advertises for clients here)"
	case CauseTimedOut:
		advice = ": nothing answered (a firewall, a wrong address, or a paused broker)"
	case CauseNotStrata:
		advice = ": something answered that is not a broker's API (the HTTP port? the inter-broker --raft-addr? the API port is 9290 by default)"
	}
	msg := fmt.Sprintf("cannot reach a broker at %s: %s%s", e.Addr, e.Cause, advice)
	for _, o := range e.Others {
		msg += fmt.Sprintf("; nor at %s: %s", o.Addr, o.Cause)
	}
	return msg
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// final reports whether a retry cannot help by itself soon: the address
// refuses, does not resolve, or is not a broker. (A broker being started
// refuses too: FailFast callers accept that.)
func (e *UnreachableError) final() bool {
	return e.Cause == CauseRefused || e.Cause == CauseNoSuchHost || e.Cause == CauseNotStrata
}

// classifyUnreachable wraps err, from a call to the broker at addr, in an
// UnreachableError when it says the broker could not be reached or was
// not a broker; other errors pass unchanged.
func classifyUnreachable(addr string, err error) error {
	if err == nil {
		return nil
	}
	var already *UnreachableError
	var adv *AdvertisedUnreachableError
	var tlsErr *TLSError
	if errors.As(err, &already) || errors.As(err, &adv) || errors.As(err, &tlsErr) {
		return err
	}
	msg := err.Error()
	// A peer that accepts the connection and never speaks (a paused
	// broker, a proxy or firewall holding the port) fails gRPC's handshake
	// too: gRPC gives up after its connect timeout and closes the
	// connection under its own preface read. That is no answer, not a
	// wrong answer, so it is not "not a Strata API", which FailFast takes
	// as final.
	silent := strings.Contains(msg, "error reading server preface") &&
		(strings.Contains(msg, "use of closed network connection") || strings.Contains(msg, "i/o timeout"))
	notStrata := !silent && (strings.Contains(msg, "error reading server preface") || strings.Contains(msg, "looked like an HTTP/1.1 header") ||
		strings.Contains(msg, "unexpected HTTP status code") || strings.Contains(msg, "missing HTTP content-type"))
	if notStrata && status.Code(err) == codes.Unimplemented {
		// gRPC says Unimplemented for an HTTP server's 404: not a broker
		// of another version, which is what Unimplemented means otherwise.
		return &UnreachableError{Addr: addr, Cause: CauseNotStrata, Err: &apierr.Error{Code: v1.ErrorCode_ERROR_CODE_UNAVAILABLE, Message: "broker unreachable: " + msg}}
	}
	if !unreachable(err) {
		return err
	}
	cause := CauseOther
	switch {
	case notStrata:
		cause = CauseNotStrata
	case strings.Contains(msg, "connection refused"):
		cause = CauseRefused
	case strings.Contains(msg, "produced zero addresses") || strings.Contains(msg, "no such host"):
		cause = CauseNoSuchHost
	case silent || strings.Contains(msg, "i/o timeout") || strings.Contains(msg, "no answer from the broker"):
		cause = CauseTimedOut
	}
	return &UnreachableError{Addr: addr, Cause: cause, Err: err}
}

// checkAddr refuses a broker address that cannot work, before any dial:
// a URL, or no port.
func checkAddr(a string) error {
	if i := strings.Index(a, "://"); i >= 0 {
		return fmt.Errorf("client: broker address %q is a URL: give host:port (%s), the broker's API address", a, a[i+3:])
	}
	if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
		return fmt.Errorf("client: broker address %q has no port: give host:port (strata-broker's API listens on 9290 by default)", a)
	}
	return nil
}

// FailFast makes a call fail at once, rather than retry for RetryTimeout,
// when every broker address it was given fails for a reason a retry does
// not fix by itself (refused, unknown host, not a Strata API) and no
// broker has answered yet. For tools, whose user wants to know now; a
// service that may start before its brokers should not set it.
func FailFast() Opt {
	return func(c *config) { c.failFast = true }
}
