package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
)

// Routing to group coordinators. Every group call (heartbeats, commits,
// offset fetches, describe, delete) must reach the broker that
// coordinates the group: the leader of the __consumer_offsets partition
// the group's name hashes to. FindCoordinator, which any broker answers,
// names it; coordCache remembers the answer per group. A NOT_COORDINATOR
// reply that names the new coordinator (Error.leader_id, and
// leader_addr when known) moves the group there at once, like a
// NOT_LEADER hint moves a partition (see metaCache.redirect); any other
// retriable error forgets the group's coordinator, and the next attempt
// asks FindCoordinator again.
type coordCache struct {
	mu struct {
		sync.Mutex
		addrs map[string]string // group -> coordinator API address
	}
}

func (cc *coordCache) get(group string) (string, bool) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	addr, ok := cc.mu.addrs[group]
	return addr, ok
}

func (cc *coordCache) set(group, addr string) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.mu.addrs == nil {
		cc.mu.addrs = make(map[string]string)
	}
	cc.mu.addrs[group] = addr
}

func (cc *coordCache) forget(group string) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	delete(cc.mu.addrs, group)
}

// coordinator returns the connection to group's coordinator, asking
// FindCoordinator (of the broker anyConn picks for attempt) when none is
// cached.
func (c *Client) coordinator(ctx context.Context, group string, attempt int) (v1.StrataClient, string, error) {
	if addr, ok := c.coords.get(group); ok {
		cl, err := c.conn(addr)
		return cl, addr, err
	}
	cl, via, err := c.anyConn(attempt)
	if err != nil {
		return nil, "", err
	}
	resp, err := cl.FindCoordinator(ctx, &v1.FindCoordinatorRequest{Group: group})
	if err != nil {
		return nil, "", apierr.FromStatus(err)
	}
	if resp.GetApiAddr() == "" {
		return nil, "", apierr.New(v1.ErrorCode_ERROR_CODE_UNAVAILABLE, "group %q has no coordinator yet", group)
	}
	addr := fixAddr(resp.GetApiAddr(), via)
	c.coords.set(group, addr)
	cl, err = c.conn(addr)
	return cl, addr, err
}

// coordinatorErr is how a group call reports err, from the coordinator
// at via: a NOT_COORDINATOR naming a reachable coordinator is recorded
// and marked redirected (retried at once); any other retriable error
// forgets the group's coordinator.
func (c *Client) coordinatorErr(group, via string, err error) error {
	if err == nil || !retriable(err) {
		return err
	}
	var e *apierr.Error
	if errors.As(err, &e) && e.Code == v1.ErrorCode_ERROR_CODE_NOT_COORDINATOR && e.LeaderID != 0 {
		addr := e.LeaderAddr
		if addr != "" {
			addr = fixAddr(addr, via)
		} else if s, _ := c.meta.current(); s != nil {
			addr = s.brokers[e.LeaderID]
		}
		if addr != "" && addr != via {
			c.coords.set(group, addr)
			return &redirectedError{err}
		}
	}
	c.coords.forget(group)
	return err
}

// groupCall runs fn against group's coordinator, with retries within the
// client's RetryTimeout; fn returns gRPC errors as they come.
func (c *Client) groupCall(ctx context.Context, group string, fn func(ctx context.Context, cl v1.StrataClient) error) error {
	if group == "" {
		return apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_REQUEST, "empty group name")
	}
	return c.retry(ctx, time.Now().Add(c.cfg.retryTimeout), func(ctx context.Context, attempt int) error {
		return c.groupAttempt(ctx, group, attempt, fn)
	})
}

// groupAttempt is one attempt of groupCall: heartbeats use it alone, as
// their loop is their retry.
func (c *Client) groupAttempt(ctx context.Context, group string, attempt int, fn func(ctx context.Context, cl v1.StrataClient) error) error {
	cl, via, err := c.coordinator(ctx, group, attempt)
	if err != nil {
		if retriable(err) {
			c.coords.forget(group)
		}
		return aboutGroup(group, "find coordinator of", err)
	}
	return c.coordinatorErr(group, via, apierr.FromStatus(fn(ctx, cl)))
}

// aboutGroup adds "<what> group G: " to err, except to an authorization
// error: the broker's refusal already names the group, the principal and
// the ACL to add, and each layer naming the group again made the line
// say it three times.
func aboutGroup(group, what string, err error) error {
	if errors.Is(err, apierr.ErrAuthorization) {
		return err
	}
	if what == "" {
		return fmt.Errorf("group %q: %w", group, err)
	}
	return fmt.Errorf("%s group %q: %w", what, group, err)
}
