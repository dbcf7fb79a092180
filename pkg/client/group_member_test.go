package client

import (
	"fmt"
	"testing"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
)

// The member core, step by step, without sockets or clocks.
func TestMemberProtocol(t *testing.T) {
	m := newMember()
	tp := func(p int32) TopicPartition { return TopicPartition{"t", p} }
	assignment := func(ps ...int32) []*v1.TopicPartitions {
		return []*v1.TopicPartitions{{Topic: "t", Partitions: ps}}
	}
	heartbeat := func() (*v1.GroupHeartbeatRequest, uint64) {
		req := &v1.GroupHeartbeatRequest{}
		return req, m.request(req)
	}
	plan := func() string {
		r, l, a := m.plan()
		return fmt.Sprintf("revoke %v lost %v assign %v", r, l, a)
	}

	// Join: epoch 0, owning nothing.
	req, sent := heartbeat()
	if req.MemberEpoch != 0 || req.MemberId != "" || req.OwnedUnchanged {
		t.Fatalf("join request %v", req)
	}
	if !m.onResponse(&v1.GroupHeartbeatResponse{MemberId: "m1", MemberEpoch: 3, HeartbeatIntervalMs: 100, Assignment: assignment(0, 1)}, sent) {
		t.Fatal("a new assignment needs reconciling")
	}
	if got := plan(); got != "revoke [] lost [] assign [t/0 t/1]" {
		t.Fatal(got)
	}
	m.acquire([]TopicPartition{tp(0), tp(1)})

	// The next heartbeat reports the new owned set; the one after says unchanged.
	req, sent = heartbeat()
	if req.MemberId != "m1" || req.MemberEpoch != 3 || req.OwnedUnchanged || fmt.Sprint(fromTopics(req.Owned)) != "[t/0 t/1]" {
		t.Fatalf("request after acquiring: %v", req)
	}
	if m.onResponse(&v1.GroupHeartbeatResponse{MemberId: "m1", MemberEpoch: 3, Assignment: assignment(0, 1)}, sent) {
		t.Fatal("nothing to reconcile")
	}
	if req, _ = heartbeat(); !req.OwnedUnchanged || req.Owned != nil {
		t.Fatalf("unchanged request: %v", req)
	}

	// Revoke t/1: owned changes while the heartbeat is out, so the
	// reply does not count as acknowledging it.
	req, sent = heartbeat()
	m.onResponse(&v1.GroupHeartbeatResponse{MemberId: "m1", MemberEpoch: 4, Assignment: assignment(0)}, sent)
	if got := plan(); got != "revoke [t/1] lost [] assign []" {
		t.Fatal(got)
	}
	m.release([]TopicPartition{tp(1)})
	if req, _ = heartbeat(); req.OwnedUnchanged || req.MemberEpoch != 4 || fmt.Sprint(fromTopics(req.Owned)) != "[t/0]" {
		t.Fatalf("after revoking: %v", req)
	}

	// Fenced for a stale epoch: drop everything, then rejoin under the same id.
	if !m.onError(apierr.ErrFencedMemberEpoch) || m.canHeartbeat() {
		t.Fatal("fencing must stop heartbeats until the partitions are dropped")
	}
	if got := plan(); got != "revoke [] lost [t/0] assign []" {
		t.Fatal(got)
	}
	m.release([]TopicPartition{tp(0)})
	if req, _ = heartbeat(); !m.canHeartbeat() || req.MemberEpoch != 0 || req.MemberId != "m1" || len(req.Owned) != 0 {
		t.Fatalf("rejoin after a stale epoch: %v", req)
	}
	// Unknown member: rejoin without an id.
	m.onError(apierr.ErrUnknownMember)
	if req, _ = heartbeat(); req.MemberEpoch != 0 || req.MemberId != "" {
		t.Fatalf("rejoin after unknown member: %v", req)
	}
	// Retriable errors change nothing; others wait for Poll.
	if m.onError(apierr.ErrNotCoordinator) || m.err != nil {
		t.Fatal("NOT_COORDINATOR is retried")
	}
	if m.onError(apierr.ErrInvalidRequest); m.err == nil {
		t.Fatal("INVALID_REQUEST is for Poll")
	}
	// Leaving.
	req = &v1.GroupHeartbeatRequest{}
	m.leave(req, true)
	if req.MemberEpoch != -2 {
		t.Fatalf("static leave: %v", req)
	}
}
