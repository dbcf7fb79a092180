package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"
)

// Client is a connection to a Strata cluster: a pool of gRPC connections,
// one per broker, and a metadata cache that says which broker leads each
// partition. It is safe for concurrent use. Producers, consumers and the
// admin API are made from it and share its connections.
type Client struct {
	cfg   config
	log   *zap.Logger
	seeds []string

	mu struct {
		sync.Mutex
		conns     map[string]*grpc.ClientConn // by address
		closed    bool
		producers map[*Producer]struct{}
		consumers map[*Consumer]struct{}
		groups    map[*GroupConsumer]struct{}
	}
	meta   metaCache
	coords coordCache
}

// New makes a client for the cluster reachable at brokers (host:port API
// addresses; one is enough, the rest are learned from metadata). It does
// not dial: connections are made on first use, so New fails only for bad
// options or an empty broker list.
func New(brokers []string, opts ...Opt) (*Client, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.err(); err != nil {
		return nil, err
	}
	var seeds []string
	for _, b := range brokers {
		if b != "" {
			if err := checkAddr(b); err != nil {
				return nil, err
			}
			seeds = append(seeds, b)
		}
	}
	if len(seeds) == 0 {
		return nil, ErrNoBrokers
	}
	c := &Client{cfg: cfg, log: cfg.log, seeds: seeds}
	c.mu.conns = make(map[string]*grpc.ClientConn)
	c.mu.producers = make(map[*Producer]struct{})
	c.mu.consumers = make(map[*Consumer]struct{})
	c.mu.groups = make(map[*GroupConsumer]struct{})
	c.meta.init(c)
	return c, nil
}

// Close closes every producer and consumer made from the client (records
// still buffered in a producer fail with ErrClosed; call Producer.Close
// first to deliver them; group consumers stop without committing or
// leaving their group: call GroupConsumer.Close first) and then the
// connections. It is safe to call more
// than once.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return nil
	}
	c.mu.closed = true
	producers := c.mu.producers
	consumers := c.mu.consumers
	groups := c.mu.groups
	c.mu.producers, c.mu.consumers, c.mu.groups = nil, nil, nil
	c.mu.Unlock()

	for p := range producers {
		p.abort()
	}
	for cs := range consumers {
		cs.Close()
	}
	for gc := range groups {
		gc.abort()
	}

	c.mu.Lock()
	conns := c.mu.conns
	c.mu.conns = nil
	c.mu.Unlock()
	var errs []error
	for _, cc := range conns {
		errs = append(errs, cc.Close())
	}
	return errors.Join(errs...)
}

func (c *Client) closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.closed
}

// reconnect is the backoff between attempts to connect to a broker.
var reconnect = grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
	MinConnectTimeout: 5 * time.Second,
}

// conn returns the connection to addr, making it on first use.
func (c *Client) conn(addr string) (v1.StrataClient, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		return nil, ErrClosed
	}
	if cc, ok := c.mu.conns[addr]; ok {
		return v1.NewStrataClient(cc), nil
	}
	opts := append(c.transport(addr), // plaintext or TLS (tls.go)
		// Fetch responses reach tens of MiB; gRPC's 4 MiB default would refuse them.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageBytes), grpc.MaxCallSendMsgSize(maxMessageBytes)),
		// Reconnect to a broker that was down within a second of its
		// return, as Kafka clients do (reconnect.backoff.max.ms, 1 s).
		// gRPC's default backoff grows to 2 minutes: after a broker was
		// down 30 s, a producer could not reach it for ~10 s more, while
		// the cluster had already handed its partitions back to it.
		grpc.WithConnectParams(reconnect),
	)
	opts = append(opts, c.cfg.dialOpts...)
	var sasl *saslSession
	if c.cfg.sasl != nil {
		sasl = newSASLSession(c.cfg.sasl)
		opts = append(opts, sasl.dialOptions()...)
	}
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, err
	}
	if sasl != nil {
		sasl.cc = cc
	}
	c.mu.conns[addr] = cc
	return v1.NewStrataClient(cc), nil
}

// anyConn returns a connection for calls any broker can serve (metadata,
// admin): the seeds first, in order.
func (c *Client) anyConn(attempt int) (v1.StrataClient, string, error) {
	addrs := c.seeds
	if known := c.meta.brokerAddrs(); len(known) > 0 {
		addrs = append(append([]string(nil), c.seeds...), known...)
	}
	// A broker whose connection is failing (refused, unreachable) is
	// passed over while another is not: after a broker's death the
	// metadata a failover needs comes from the survivors at once, not
	// after a backoff per dead seed.
	pick := attempt % len(addrs)
	for i := range addrs {
		j := (attempt + i) % len(addrs)
		if !c.failing(addrs[j]) {
			pick = j
			break
		}
	}
	addr := addrs[pick]
	cl, err := c.conn(addr)
	return cl, addr, err
}

// failing reports whether the connection to addr exists and is failing
// (gRPC's TRANSIENT_FAILURE: its last attempt to connect failed).
func (c *Client) failing(addr string) bool {
	c.mu.Lock()
	cc, ok := c.mu.conns[addr]
	c.mu.Unlock()
	return ok && cc.GetState() == connectivity.TransientFailure
}

// failFastOn reports whether, with FailFast, a call must give up now: err
// is a final UnreachableError, every broker address has been tried
// (attempt counts from 0 over the seeds), and no broker has answered yet.
func (c *Client) failFastOn(err error, attempt int) bool {
	var ue *UnreachableError
	if !c.cfg.failFast || !errors.As(err, &ue) || !ue.final() || attempt+1 < len(c.seeds) {
		return false
	}
	s, _ := c.meta.current()
	return s == nil
}

// retriable reports whether a retry, after a metadata refresh, may help.
func retriable(err error) bool {
	return apierr.Retriable(err) || errors.Is(err, ErrNoLeader)
}

// retry runs fn until it succeeds, fails for good, ctx ends or the
// deadline passes. After a retriable failure it marks metadata stale and
// backs off; after a redirect (a NOT_LEADER whose hint the metadata cache
// took, see redirectedError) it keeps the metadata and retries at once,
// unless the previous attempt was redirected too: leaders named during an
// election may bounce, and those retries back off. fn gets the attempt
// number (0, 1, ...).
func (c *Client) retry(ctx context.Context, deadline time.Time, fn func(ctx context.Context, attempt int) error) error {
	backoff := c.cfg.backoffMin
	began := time.Now()
	var last error // the last retriable error, reported if time runs out
	// failed: the broker addresses that failed for good so far, so that
	// FailFast's error names each, not only the last one tried.
	var failed []*UnreachableError
	wasRedirect := false
	for attempt := 0; ; attempt++ {
		// Each attempt gets at most attemptTimeout, so that one broker
		// that accepts a connection and never answers cannot hold the
		// call past its retries.
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		err := fn(actx, attempt)
		cancel()
		if err != nil && ctx.Err() == nil && (errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded) {
			err = &apierr.Error{Code: v1.ErrorCode_ERROR_CODE_UNAVAILABLE, Message: fmt.Sprintf("no answer from the broker within %s", attemptTimeout)}
		}
		if err != nil && last != nil && ctx.Err() != nil {
			return fmt.Errorf("%w (gave up retrying: %w)", last, ctx.Err())
		}
		if err == nil || !retriable(err) {
			return err
		}
		var ue *UnreachableError
		if c.cfg.failFast && errors.As(err, &ue) && ue.final() && !slices.ContainsFunc(failed, func(f *UnreachableError) bool { return f.Addr == ue.Addr }) {
			failed = append(failed, ue)
		}
		if c.failFastOn(err, attempt) {
			for _, f := range failed {
				if f.Addr != ue.Addr {
					ue.Others = append(ue.Others, f)
				}
			}
			return err
		}
		last = err
		if c.closed() {
			return ErrClosed
		}
		isRedirect := redirected(err)
		if !isRedirect {
			c.meta.invalidate()
		}
		// While a failover may be under way (the first failoverWindow of
		// retries), backoff stays at most failoverBackoff, so that a
		// new leader, elected within 50-500 ms of the old one's death, is
		// found within about that much of its election (never below a
		// RetryBackoff minimum set higher).
		if time.Since(began) < failoverWindow {
			backoff = min(backoff, max(failoverBackoff, c.cfg.backoffMin))
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		if isRedirect && !wasRedirect {
			wait = 0
		}
		wasRedirect = isRedirect
		if time.Now().Add(wait).After(deadline) {
			return err
		}
		c.log.Debug("retrying", zap.Int("attempt", attempt), zap.Duration("backoff", wait), zap.Error(err))
		if wait == 0 {
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (gave up retrying: %w)", err, ctx.Err())
		case <-t.C:
		}
		backoff = min(backoff*2, c.cfg.backoffMax)
	}
}

// call runs an RPC that any broker can serve, with retries within the
// client's RetryTimeout, and turns gRPC errors into *apierr.Error.
func (c *Client) call(ctx context.Context, fn func(ctx context.Context, cl v1.StrataClient) error) error {
	return c.retry(ctx, time.Now().Add(c.cfg.retryTimeout), func(ctx context.Context, attempt int) error {
		cl, addr, err := c.anyConn(attempt)
		if err != nil {
			return err
		}
		return classifyUnreachable(addr, apierr.FromStatus(fn(ctx, cl)))
	})
}

// fixAddr makes an advertised address usable from here: a broker that
// listens on 0.0.0.0 or [::] advertises no usable host, so the host we
// reached it by is used instead.
func fixAddr(advertised, via string) string {
	host, port, err := net.SplitHostPort(advertised)
	if err != nil {
		return advertised
	}
	if host == "" || net.ParseIP(host) != nil && net.ParseIP(host).IsUnspecified() {
		vh, _, err := net.SplitHostPort(via)
		if err != nil {
			return advertised
		}
		return net.JoinHostPort(vh, port)
	}
	return advertised
}

// attemptTimeout bounds one attempt of any call; the broker's own waits
// (produce acks, fetch long polls) are asked to end well before it.
const attemptTimeout = 15 * time.Second

// failoverWindow and failoverBackoff: a series of retries backs off at most
// failoverBackoff for its first failoverWindow, then up to the configured
// maximum (RetryBackoff).
const (
	failoverWindow  = 2 * time.Second
	failoverBackoff = 100 * time.Millisecond
)

// maxMessageBytes matches the broker's default --max-request-bytes.
const maxMessageBytes = 64 << 20
