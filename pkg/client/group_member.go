package client

import (
	"errors"
	"maps"
	"slices"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
)

// member is the deterministic core of a group member: what the
// coordinator last assigned, what the consumer owns, and what the next
// heartbeat says. It does no I/O and reads no clock; the GroupConsumer
// drives it from two goroutines under its lock: the heartbeat loop feeds
// it requests and replies (request, onResponse, onError), and Poll
// reconciles what the consumer owns with the assignment (plan, release,
// acquire).
//
// The protocol (KIP-848 style, api/v1 GroupHeartbeat):
//
//  1. Join: epoch 0, no member id. The reply names the member id and
//     epoch, and the assignment.
//  2. Every heartbeat interval: the current id and epoch, and the
//     partitions owned now, or owned_unchanged when the coordinator has
//     already been told them.
//  3. A partition missing from the assignment is revoked: the consumer
//     stops fetching it, commits it, then releases it, and the next
//     heartbeat reports it no longer owned. Only then does the
//     coordinator give it to another member (it withholds partitions
//     still owned), so no partition is consumed by two members at once.
//  4. UNKNOWN_MEMBER or FENCED_MEMBER_EPOCH: the member has lost its
//     partitions (another member may own them already). The consumer
//     drops them without committing (commits would be fenced), and only
//     then rejoins with epoch 0 (and its id, if only its epoch was
//     stale).
//  5. Leave: epoch -1, or -2 for a static member that will be back.
type member struct {
	id       string
	epoch    int32
	interval time.Duration           // from the last reply; 0 before the first
	target   map[TopicPartition]bool // the assignment of the last reply
	owned    map[TopicPartition]bool // what the consumer owns now
	version  uint64                  // bumped on each change of owned
	told     uint64                  // the owned version the coordinator acknowledged (never: ^0)
	lost     bool                    // fenced: owned must be dropped before rejoining
	err      error                   // a heartbeat error no retry helps, for Poll to return once
}

func newMember() *member {
	return &member{owned: make(map[TopicPartition]bool), target: make(map[TopicPartition]bool), told: ^uint64(0)}
}

// canHeartbeat reports whether a heartbeat may be sent now: not while
// lost partitions are still held (step 4).
func (m *member) canHeartbeat() bool { return !m.lost }

// request fills the member fields of base (a copy of the subscription)
// and returns the owned version it reports.
func (m *member) request(req *v1.GroupHeartbeatRequest) uint64 {
	req.MemberId, req.MemberEpoch = m.id, m.epoch
	if m.epoch != 0 && m.told == m.version {
		req.OwnedUnchanged = true
		return m.version
	}
	req.Owned = byTopic(slices.Collect(maps.Keys(m.owned)))
	return m.version
}

// onResponse applies a heartbeat reply to the request that reported the
// owned version sent. It reports whether the consumer has partitions to
// revoke or take (Poll should reconcile).
func (m *member) onResponse(resp *v1.GroupHeartbeatResponse, sent uint64) bool {
	m.id, m.epoch = resp.GetMemberId(), resp.GetMemberEpoch()
	if ms := resp.GetHeartbeatIntervalMs(); ms > 0 {
		m.interval = time.Duration(ms) * time.Millisecond
	}
	if sent == m.version {
		m.told = sent
	}
	m.target = make(map[TopicPartition]bool)
	for _, tp := range fromTopics(resp.GetAssignment()) {
		m.target[tp] = true
	}
	return m.unreconciled()
}

// onError applies a failed heartbeat. It reports whether the member was
// fenced (its partitions are lost: Poll should drop them).
func (m *member) onError(err error) bool {
	switch {
	case errors.Is(err, apierr.ErrUnknownMember):
		m.fence(false)
		return true
	case errors.Is(err, apierr.ErrFencedMemberEpoch):
		m.fence(true)
		return true
	}
	if !retriable(err) {
		m.err = err
	}
	return false
}

// fence forgets the membership: the next heartbeat joins anew (epoch 0),
// once the consumer has dropped what it owned. A member fenced for a
// stale epoch is still known to the coordinator and rejoins under its id
// (KIP-848); one the coordinator does not know joins without one.
func (m *member) fence(keepID bool) {
	if !keepID {
		m.id = ""
	}
	m.epoch = 0
	m.target = make(map[TopicPartition]bool)
	m.told = ^uint64(0)
	m.lost = len(m.owned) > 0
}

// unreconciled reports whether owned differs from the assignment, or
// lost partitions wait to be dropped.
func (m *member) unreconciled() bool {
	if m.lost {
		return true
	}
	return !maps.Equal(m.owned, m.target)
}

// plan says how the consumer gets from owned to the assignment: revoke
// (commit, then release), lost (release without commit) and assign
// (acquire), each sorted.
func (m *member) plan() (revoke, lost, assign []TopicPartition) {
	if m.lost {
		return nil, sortedTPs(m.owned), nil
	}
	for tp := range m.owned {
		if !m.target[tp] {
			revoke = append(revoke, tp)
		}
	}
	for tp := range m.target {
		if !m.owned[tp] {
			assign = append(assign, tp)
		}
	}
	slices.SortFunc(revoke, TopicPartition.compare)
	slices.SortFunc(assign, TopicPartition.compare)
	return revoke, nil, assign
}

// release marks tps no longer owned. Once every lost partition is
// released the member may rejoin.
func (m *member) release(tps []TopicPartition) {
	for _, tp := range tps {
		delete(m.owned, tp)
	}
	m.version++
	if len(m.owned) == 0 {
		m.lost = false
	}
}

// acquire marks tps owned.
func (m *member) acquire(tps []TopicPartition) {
	for _, tp := range tps {
		m.owned[tp] = true
	}
	m.version++
}

// leave fills a leaving heartbeat: epoch -1, or -2 for a static member
// that keeps its partitions for the session timeout.
func (m *member) leave(req *v1.GroupHeartbeatRequest, static bool) {
	req.MemberId, req.MemberEpoch = m.id, -1
	if static {
		req.MemberEpoch = -2
	}
}

// joined reports whether the member is in the group.
func (m *member) joined() bool { return m.id != "" && m.epoch > 0 }
