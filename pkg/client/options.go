package client

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// Opt configures a Client. Producer and consumer settings have their own
// option types (ProducerOpt, ConsumerOpt) so that passing one to the wrong
// constructor does not compile.
type Opt func(*config)

type config struct {
	log            *zap.Logger
	dialOpts       []grpc.DialOption
	tls            *tls.Config // nil: plaintext (tls.go)
	metadataMaxAge time.Duration
	retryTimeout   time.Duration
	backoffMin     time.Duration
	backoffMax     time.Duration
	failFast       bool        // FailFast (unreachable.go)
	sasl           *saslConfig // sasl.go
	optErrs
}

func defaultConfig() config {
	return config{
		log:            zap.NewNop(),
		metadataMaxAge: 5 * time.Minute,
		retryTimeout:   30 * time.Second,
		// A failover elects a new leader within ~50-150 ms of a broker's
		// death: the first retries come soon so that a producer finds it
		// then, and the doubling reaches the cap within a second.
		backoffMin: 20 * time.Millisecond,
		backoffMax: 500 * time.Millisecond,
	}
}

// optErrs collects what a list of options found wrong. Every config type
// embeds it, so an option records a bad value with fail and the
// constructor (New, NewProducer, NewConsumer) reports them all at once
// with err, rather than only the first.
type optErrs []error

func (e *optErrs) fail(format string, args ...any) {
	*e = append(*e, fmt.Errorf("client: "+format, args...))
}

func (e optErrs) err() error { return errors.Join(e...) }

// Logger sets the logger; the default discards everything.
func Logger(l *zap.Logger) Opt {
	return func(c *config) {
		if l == nil {
			c.fail("Logger: nil logger")
			return
		}
		c.log = l
	}
}

// DialOptions adds gRPC dial options (for example a custom dialer in
// tests). Insecure transport credentials are always set first; a later
// grpc.WithTransportCredentials overrides them.
func DialOptions(opts ...grpc.DialOption) Opt {
	return func(c *config) { c.dialOpts = append(c.dialOpts, opts...) }
}

// MetadataMaxAge is how long cached metadata (partition counts, leaders)
// is trusted before a call refreshes it. Retriable errors refresh it at
// once regardless. Default 5m.
func MetadataMaxAge(d time.Duration) Opt {
	return func(c *config) {
		if d <= 0 {
			c.fail("MetadataMaxAge: %s is not positive", d)
			return
		}
		c.metadataMaxAge = d
	}
}

// RetryTimeout bounds how long admin calls, metadata loads and consumer
// fetches keep retrying retriable errors (NOT_LEADER, UNAVAILABLE, an
// unreachable broker) before giving up. Producers use DeliveryTimeout
// instead. Default 30s.
func RetryTimeout(d time.Duration) Opt {
	return func(c *config) {
		if d < 0 {
			c.fail("RetryTimeout: %s is negative", d)
			return
		}
		c.retryTimeout = d
	}
}

// RetryBackoff sets the backoff between retries: it starts at lo and
// doubles up to hi, with jitter, staying at most 100ms for the first 2 s of
// a call's retries (a failover's usual length). Default 20ms to 500ms.
func RetryBackoff(lo, hi time.Duration) Opt {
	return func(c *config) {
		if lo <= 0 || hi < lo {
			c.fail("RetryBackoff: need 0 < lo <= hi, got %s, %s", lo, hi)
			return
		}
		c.backoffMin, c.backoffMax = lo, hi
	}
}
