package client

import (
	"cmp"
	"context"
	"errors"
	"math/rand/v2"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	// heartbeatTimeout bounds one heartbeat call: well under the
	// session timeout, so a coordinator that stopped answering is
	// replaced (FindCoordinator) while the session still stands.
	heartbeatTimeout = 5 * time.Second
	// defaultHeartbeatInterval is used until the coordinator names one.
	defaultHeartbeatInterval = 3 * time.Second
	// defaultSessionTimeout is the broker's default session timeout, for
	// a member that did not set its own (see heartbeatLoop).
	defaultSessionTimeout = 45 * time.Second
)

// heartbeatLoop joins the group and heartbeats until Close: every
// heartbeat interval, and at once when the owned partitions change
// (heartbeatNow). It feeds the replies to the member and wakes Poll when
// there is something to reconcile. Retriable errors (NOT_COORDINATOR,
// an unreachable coordinator) are retried with backoff, after finding
// the coordinator again; UNKNOWN_MEMBER and FENCED_MEMBER_EPOCH fence
// the member (see member.fence). A member that has not heard from its
// coordinator for a whole session timeout fences itself: the coordinator
// has removed it by then and given its partitions to others, so reading
// on would read them twice.
func (gc *GroupConsumer) heartbeatLoop() {
	cfg := gc.c.cfg
	backoff := cfg.backoffMin
	wasRedirect := false
	session := cmp.Or(gc.cfg.sessionTimeout, defaultSessionTimeout)
	lastOK := time.Now()
	t := time.NewTimer(0)
	defer t.Stop()
	for attempt := 0; ; {
		select {
		case <-gc.ctx.Done():
			return
		case <-t.C:
		case <-gc.hbNow:
		}
		gc.mu.Lock()
		if !gc.mu.m.canHeartbeat() {
			gc.mu.Unlock()
			t.Reset(defaultHeartbeatInterval) // Poll drops the lost partitions, then heartbeatNow
			continue
		}
		req := gc.subscription()
		sent := gc.mu.m.request(req)
		gc.mu.Unlock()

		var resp *v1.GroupHeartbeatResponse
		ctx, cancel := context.WithTimeout(gc.ctx, heartbeatTimeout)
		err := gc.c.groupAttempt(ctx, gc.group, attempt, func(ctx context.Context, cl v1.StrataClient) (err error) {
			resp, err = cl.GroupHeartbeat(ctx, req)
			return err
		})
		cancel()
		if gc.ctx.Err() != nil {
			return
		}
		if errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded {
			err = apierr.New(v1.ErrorCode_ERROR_CODE_UNAVAILABLE, "no answer from the coordinator of group %q within %s", gc.group, heartbeatTimeout)
		}

		gc.mu.Lock()
		var wake bool
		next := time.Duration(0)
		isRedirect := redirected(err)
		switch {
		case err == nil:
			wake = gc.mu.m.onResponse(resp, sent)
			next = cmp.Or(gc.mu.m.interval, defaultHeartbeatInterval)
			backoff, attempt = cfg.backoffMin, 0
			lastOK = time.Now()
		case gc.mu.m.joined() && time.Since(lastOK) > session:
			gc.mu.m.fence(false)
			wake = true
			gc.c.log.Warn("no heartbeat reached the coordinator for a session timeout: partitions lost",
				zap.String("group", gc.group), zap.Duration("session", session), zap.Error(err))
		case gc.mu.m.onError(err):
			wake = true // fenced: Poll drops the partitions; the join follows
			gc.c.log.Info("group member fenced", zap.String("group", gc.group), zap.Error(err))
		case isRedirect && !wasRedirect:
			attempt++ // straight to the coordinator named
		case retriable(err):
			next = backoff/2 + rand.N(backoff/2+1)
			backoff = min(backoff*2, cfg.backoffMax)
			attempt++
			gc.c.log.Debug("heartbeat", zap.String("group", gc.group), zap.Duration("backoff", next), zap.Error(err))
		default:
			wake = true // Poll returns the error
			next = cfg.backoffMax
			attempt++
			gc.c.log.Warn("heartbeat", zap.String("group", gc.group), zap.Error(err))
		}
		wasRedirect = isRedirect
		gc.mu.Unlock()
		if wake {
			gc.wakePoll()
		}
		t.Reset(next)
	}
}

// heartbeatNow asks the heartbeat loop to send one at once.
func (gc *GroupConsumer) heartbeatNow() {
	select {
	case gc.hbNow <- struct{}{}:
	default:
	}
}

// subscription is a heartbeat request with the member's subscription and
// settings; member.request adds the membership.
func (gc *GroupConsumer) subscription() *v1.GroupHeartbeatRequest {
	return &v1.GroupHeartbeatRequest{
		Group:              gc.group,
		InstanceId:         gc.cfg.instanceID,
		ClientId:           "strata-go",
		Topics:             gc.cfg.topics,
		TopicRegex:         gc.cfg.regex,
		SessionTimeoutMs:   int32(gc.cfg.sessionTimeout.Milliseconds()),
		RebalanceTimeoutMs: int32(gc.cfg.rebalanceTimeout.Milliseconds()),
		Assignor:           gc.cfg.assignor,
	}
}

// leave sends the leave heartbeat, with retries within ctx and the
// client's RetryTimeout.
func (gc *GroupConsumer) leave(ctx context.Context) error {
	req := gc.subscription()
	gc.mu.Lock()
	gc.mu.m.leave(req, gc.cfg.instanceID != "")
	gc.mu.Unlock()
	return gc.c.groupCall(ctx, gc.group, func(ctx context.Context, cl v1.StrataClient) error {
		_, err := cl.GroupHeartbeat(ctx, req)
		return err
	})
}
