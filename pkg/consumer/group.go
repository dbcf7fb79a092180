package consumer

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/consumer/assign"
)

// Group is one consumer group's state on its coordinator: members, the
// group epoch, the target assignment and the committed offsets. It is the
// deterministic core: every method takes the time, none blocks or does
// I/O, and the Coordinator persists what they return. Not safe for
// concurrent use (the Coordinator locks).
//
// A member's life (KIP-848):
//
//	          heartbeat epoch 0                       told = target
//	(none) ───────────────────▶ joining ─────────────────────────────▶ stable
//	                             │  ▲   some target partitions are       │
//	                             │  └── still owned by others: withheld ◀┘ group epoch moves
//	                             │        (member epoch stays behind)      (join, leave, subscription,
//	  epoch -1 / session timeout │                                          new partitions)
//	  / revoke not done in time  ▼
//	                          removed ── its partitions go to the others
//	  epoch -2 (static member): kept with its partitions for its session timeout
type Group struct {
	Name     string
	Epoch    int32
	Assignor string
	members  map[string]*Member
	target   assign.Assignment
	topicSig string // the subscribed topics' partition counts the target was computed for

	offsets map[topicPartition]OffsetValue
}

type topicPartition struct {
	topic     string
	partition int32
}

// Member is one member of a group.
type Member struct {
	ID, InstanceID, ClientID string
	Epoch, prevEpoch         int32
	Topics                   []string
	Regex                    string
	re                       *regexp.Regexp
	Session, Rebalance       time.Duration
	deadline                 time.Time // session expiry
	revokeBy                 time.Time // zero, or when it must have released revoked partitions
	owned                    []assign.TopicPartition
	told                     []assign.TopicPartition
	// taken: partitions it was told or owned and was then told to give
	// up, with the epoch of that answer. They stay its (withheld from
	// others) until it heartbeats at that epoch or later without them: a
	// member may read a partition it was told before it reports owning
	// it, and a heartbeat it sent before hearing of the revoke may arrive
	// after it.
	taken      map[assign.TopicPartition]int32
	staticLeft bool // left with epoch -2: kept for its session
	reconciled bool // owns exactly its target
}

// Defaults for members that do not say.
const (
	DefaultSession   = 45 * time.Second
	DefaultRebalance = 60 * time.Second
	// HeartbeatInterval is what a member that owns exactly its target is
	// told; one still reconciling (waiting for partitions another member
	// holds, or asked to release some) is told ReconcileInterval, so that
	// a rebalance completes in a few of those. A member also heartbeats at
	// once when its owned partitions change.
	HeartbeatInterval = 300 * time.Millisecond
	ReconcileInterval = 50 * time.Millisecond
	minSession        = time.Second
	maxSession        = 30 * time.Minute
)

// NewGroup makes an empty group.
func NewGroup(name string) *Group {
	return &Group{Name: name, Assignor: assign.Default, members: map[string]*Member{}, offsets: map[topicPartition]OffsetValue{}}
}

// Members returns the members sorted by ID.
func (g *Group) Members() []*Member {
	return slices.SortedFunc(maps.Values(g.members), func(a, b *Member) int { return strings.Compare(a.ID, b.ID) })
}

// Target returns a member's target assignment.
func (g *Group) Target(id string) []assign.TopicPartition { return g.target[id] }

// State is "empty", "stable" (every member owns exactly its target) or
// "reconciling".
func (g *Group) State() string {
	if len(g.members) == 0 {
		return "empty"
	}
	for _, m := range g.members {
		if !m.reconciled {
			return "reconciling"
		}
	}
	return "stable"
}

// Active reports whether the group has members (offset resets and
// deletion are refused then).
func (g *Group) Active() bool { return len(g.members) > 0 }

// Heartbeat applies one GroupHeartbeat at time now. topics gives the
// cluster's topics and partition counts (to resolve subscriptions). It
// returns the response and whether the membership changed, in which case
// the caller persists Record() before answering.
func (g *Group) Heartbeat(now time.Time, req *v1.GroupHeartbeatRequest, topics map[string]int32) (*v1.GroupHeartbeatResponse, bool, error) {
	changed := false
	var m *Member
	switch req.MemberEpoch {
	case 0:
		var err error
		if m, changed, err = g.join(now, req); err != nil {
			return nil, false, err
		}
	case -1, -2:
		m = g.members[req.MemberId]
		if m == nil {
			return &v1.GroupHeartbeatResponse{MemberId: req.MemberId, MemberEpoch: req.MemberEpoch}, false, nil
		}
		if req.MemberEpoch == -2 && m.InstanceID != "" {
			m.staticLeft, m.deadline = true, now.Add(m.Session)
			return &v1.GroupHeartbeatResponse{MemberId: m.ID, MemberEpoch: -2}, false, nil
		}
		g.remove(m.ID)
		g.reassign(topics)
		return &v1.GroupHeartbeatResponse{MemberId: m.ID, MemberEpoch: -1}, true, nil
	default:
		m = g.members[req.MemberId]
		if m == nil {
			return nil, false, apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN_MEMBER,
				"member %s is not in group %s (its session expired, or it was removed): release its partitions and join again with epoch 0", req.MemberId, g.Name)
		}
		if req.MemberEpoch != m.Epoch && req.MemberEpoch != m.prevEpoch {
			return nil, false, apierr.New(v1.ErrorCode_ERROR_CODE_FENCED_MEMBER_EPOCH,
				"member %s of group %s sent epoch %d, but its epoch is %d: it is a zombie; release its partitions and join again with epoch 0", m.ID, g.Name, req.MemberEpoch, m.Epoch)
		}
		if sub := subscriptionOf(req); sub != nil && (!slices.Equal(sub.Topics, m.Topics) || sub.Regex != m.Regex) {
			if err := m.subscribe(req); err != nil {
				return nil, false, err
			}
			g.Epoch++
			changed = true
		}
	}
	if !req.OwnedUnchanged || req.MemberEpoch == 0 {
		m.owned = flatten(req.Owned)
	}
	for tp, epoch := range m.taken {
		if req.MemberEpoch >= epoch && !slices.Contains(m.owned, tp) {
			delete(m.taken, tp) // released, and it knew it had to
		}
	}
	m.staticLeft = false
	m.deadline = now.Add(m.Session)
	if changed || g.topicSig != signature(g.subscribed(topics)) {
		if !changed {
			g.Epoch++ // new topics or partitions
		}
		g.reassign(topics)
		changed = true
	}
	g.tell(now, m)
	interval := HeartbeatInterval
	if !m.reconciled {
		interval = ReconcileInterval
	}
	return &v1.GroupHeartbeatResponse{
		MemberId: m.ID, MemberEpoch: m.Epoch, HeartbeatIntervalMs: int32(interval.Milliseconds()),
		Assignment: grouped(m.told),
	}, changed, nil
}

func (g *Group) join(now time.Time, req *v1.GroupHeartbeatRequest) (*Member, bool, error) {
	if req.InstanceId != "" {
		for _, old := range g.members {
			if old.InstanceID == req.InstanceId {
				// A static member back from a restart: same member, same
				// partitions, no rebalance.
				if err := old.subscribe(req); err != nil {
					return nil, false, err
				}
				old.ClientID = req.ClientId
				return old, false, nil
			}
		}
	}
	if req.MemberId != "" {
		if old := g.members[req.MemberId]; old != nil {
			g.remove(old.ID) // rejoining after a fence: start afresh
		}
	}
	m := &Member{ID: req.MemberId, InstanceID: req.InstanceId, ClientID: req.ClientId}
	if m.ID == "" {
		m.ID = newMemberID()
	}
	if err := m.subscribe(req); err != nil {
		return nil, false, err
	}
	if req.Assignor != "" {
		if _, err := assign.New(req.Assignor); err != nil {
			return nil, false, apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_REQUEST, "%v", err)
		}
		g.Assignor = req.Assignor
	}
	g.members[m.ID] = m
	g.Epoch++
	return m, true, nil
}

type subscription struct {
	Topics []string
	Regex  string
}

func subscriptionOf(req *v1.GroupHeartbeatRequest) *subscription {
	if len(req.Topics) == 0 && req.TopicRegex == "" {
		return nil // unchanged
	}
	t := slices.Clone(req.Topics)
	slices.Sort(t)
	return &subscription{Topics: slices.Compact(t), Regex: req.TopicRegex}
}

func (m *Member) subscribe(req *v1.GroupHeartbeatRequest) error {
	sub := subscriptionOf(req)
	if sub == nil {
		if m.Topics == nil && m.Regex == "" {
			return apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_REQUEST, "a member must subscribe to topics or a topic regex")
		}
		return nil
	}
	if sub.Regex != "" {
		re, err := regexp.Compile("^(?:" + sub.Regex + ")$")
		if err != nil {
			return apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_REQUEST, "topic regex %q: %v", sub.Regex, err)
		}
		m.re = re
	} else {
		m.re = nil
	}
	m.Topics, m.Regex = sub.Topics, sub.Regex
	m.Session = clampDuration(req.SessionTimeoutMs, DefaultSession, minSession, maxSession)
	m.Rebalance = clampDuration(req.RebalanceTimeoutMs, DefaultRebalance, minSession, maxSession)
	return nil
}

func clampDuration(ms int32, def, lo, hi time.Duration) time.Duration {
	if ms <= 0 {
		return def
	}
	return min(max(time.Duration(ms)*time.Millisecond, lo), hi)
}

// wants reports whether m subscribes to topic (internal topics only by name).
func (m *Member) wants(topic string) bool {
	if slices.Contains(m.Topics, topic) {
		return true
	}
	return m.re != nil && !strings.HasPrefix(topic, "__") && m.re.MatchString(topic)
}

// subscribed returns the topics some member subscribes to, with their
// partition counts.
func (g *Group) subscribed(topics map[string]int32) map[string]int32 {
	out := map[string]int32{}
	for t, n := range topics {
		for _, m := range g.members {
			if m.wants(t) {
				out[t] = n
				break
			}
		}
	}
	return out
}

func signature(topics map[string]int32) string {
	var b strings.Builder
	for _, t := range slices.Sorted(maps.Keys(topics)) {
		fmt.Fprintf(&b, "%s:%d,", t, topics[t])
	}
	return b.String()
}

// reassign computes a new target assignment from the previous one.
func (g *Group) reassign(topics map[string]int32) {
	sub := g.subscribed(topics)
	g.topicSig = signature(sub)
	var members []assign.Member
	for _, m := range g.Members() {
		var ts []string
		for t := range sub {
			if m.wants(t) {
				ts = append(ts, t)
			}
		}
		slices.Sort(ts)
		members = append(members, assign.Member{ID: m.ID, InstanceID: m.InstanceID, Topics: ts})
	}
	a, err := assign.New(g.Assignor)
	if err != nil {
		a, _ = assign.New(assign.Default)
	}
	target, err := a.Assign(members, assign.Topics(sub), g.target)
	if err != nil {
		return // invalid input cannot happen: members and topics come from here; keep the old target
	}
	g.target = target
}

// tell decides what m should own now: its target, minus partitions that
// another member still holds (withheld until released). Another member
// holds what it reported owning and what it was last told: it may have
// started on a partition it was told about without reporting it yet.
func (g *Group) tell(now time.Time, m *Member) {
	owned := map[string][]assign.TopicPartition{}
	for id, o := range g.members {
		held := o.owned
		if id != m.ID {
			held = append(slices.Clone(o.owned), o.told...)
			for tp := range o.taken {
				held = append(held, tp)
			}
			slices.SortFunc(held, assign.Compare)
			held = slices.Compact(held)
		}
		owned[id] = held
	}
	before := append(slices.Clone(m.told), m.owned...)
	m.told = assign.Reconcile(g.target, owned)[m.ID]
	target := g.target[m.ID]
	// The member's epoch follows the group's at every answer (the
	// previous one stays valid for a request that crossed it); whether
	// it has reached its target is a separate matter (reconciled).
	if m.Epoch != g.Epoch {
		m.prevEpoch, m.Epoch = m.Epoch, g.Epoch
	}
	for _, tp := range before {
		if !slices.Contains(m.told, tp) {
			if m.taken == nil {
				m.taken = map[assign.TopicPartition]int32{}
			}
			if _, ok := m.taken[tp]; !ok {
				m.taken[tp] = m.Epoch
			}
		}
	}
	for tp := range m.taken {
		if slices.Contains(m.told, tp) {
			delete(m.taken, tp) // told it again: its once more
		}
	}
	// All three lists are sorted by assign.Compare (flatten, Restore and
	// the assignors sort them).
	m.reconciled = slices.Equal(m.told, target) && slices.Equal(m.owned, target)
	revoking := len(m.taken) > 0
	for _, tp := range m.owned {
		if !slices.Contains(target, tp) {
			revoking = true
			break
		}
	}
	switch {
	case !revoking:
		m.revokeBy = time.Time{}
	case m.revokeBy.IsZero():
		m.revokeBy = now.Add(m.Rebalance)
	}
}

// Expire removes members whose session ended or that did not release
// revoked partitions within their rebalance timeout, and reports whether
// any went (the caller persists Record()).
func (g *Group) Expire(now time.Time, topics map[string]int32) []string {
	var gone []string
	for _, m := range g.Members() {
		if now.After(m.deadline) || (!m.revokeBy.IsZero() && now.After(m.revokeBy)) {
			g.remove(m.ID)
			gone = append(gone, m.ID)
		}
	}
	if len(gone) > 0 {
		g.reassign(topics)
	}
	return gone
}

func (g *Group) remove(id string) {
	delete(g.members, id)
	delete(g.target, id)
	g.Epoch++
}

// CanCommit checks that a member may commit an offset for tp: it is a
// member, its epoch is current, and it owns or is told to own tp. An
// admin commit (empty member, epoch -1) needs an empty group.
func (g *Group) CanCommit(member string, epoch int32, topic string, partition int32) error {
	if member == "" && epoch == -1 {
		if g.Active() {
			return apierr.New(v1.ErrorCode_ERROR_CODE_GROUP_NOT_EMPTY,
				"group %s has %d active members: stop them (or wait for their sessions to expire) before resetting its offsets", g.Name, len(g.members))
		}
		return nil
	}
	m := g.members[member]
	if m == nil {
		return apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN_MEMBER, "member %s is not in group %s: join again", member, g.Name)
	}
	if epoch != m.Epoch && epoch != m.prevEpoch {
		return apierr.New(v1.ErrorCode_ERROR_CODE_FENCED_MEMBER_EPOCH,
			"member %s of group %s committed with epoch %d, but its epoch is %d: a zombie cannot commit", member, g.Name, epoch, m.Epoch)
	}
	tp := assign.TopicPartition{Topic: topic, Partition: partition}
	if !slices.Contains(m.owned, tp) && !slices.Contains(m.told, tp) {
		return apierr.New(v1.ErrorCode_ERROR_CODE_FENCED_MEMBER_EPOCH,
			"member %s of group %s does not own %s/%d: another member does now", member, g.Name, topic, partition)
	}
	return nil
}

// Commit records a committed offset (after it was stored). A member's
// commit never moves an offset back (a lower one is ignored, and reported
// false); an admin commit (seek) sets it.
func (g *Group) Commit(topic string, partition int32, v OffsetValue) bool {
	k := topicPartition{topic, partition}
	if old, ok := g.offsets[k]; ok && v.Member != "" && v.Offset < old.Offset {
		return false
	}
	g.offsets[k] = v
	return true
}

// Committed returns the committed offset of topic/partition.
func (g *Group) Committed(topic string, partition int32) (OffsetValue, bool) {
	v, ok := g.offsets[topicPartition{topic, partition}]
	return v, ok
}

// CommittedAll calls fn for each committed offset, sorted.
func (g *Group) CommittedAll(fn func(topic string, partition int32, v OffsetValue)) {
	keys := slices.SortedFunc(maps.Keys(g.offsets), func(a, b topicPartition) int {
		if c := strings.Compare(a.topic, b.topic); c != 0 {
			return c
		}
		return int(a.partition - b.partition)
	})
	for _, k := range keys {
		fn(k.topic, k.partition, g.offsets[k])
	}
}

// Owner returns the member that owns or is told to own tp, if any.
func (g *Group) Owner(topic string, partition int32) string {
	tp := assign.TopicPartition{Topic: topic, Partition: partition}
	for _, m := range g.Members() {
		if slices.Contains(m.owned, tp) || slices.Contains(m.told, tp) {
			return m.ID
		}
	}
	return ""
}

// Record is the group's membership as stored in the offsets topic.
func (g *Group) Record() GroupRecord {
	r := GroupRecord{Epoch: g.Epoch, Assignor: g.Assignor}
	for _, m := range g.Members() {
		mr := MemberRecord{
			ID: m.ID, InstanceID: m.InstanceID, ClientID: m.ClientID, Epoch: m.Epoch, Topics: m.Topics, TopicRegex: m.Regex,
			SessionTimeoutMs: int32(m.Session.Milliseconds()), RebalanceMs: int32(m.Rebalance.Milliseconds()),
			Target: map[string][]int32{},
		}
		for _, tp := range g.target[m.ID] {
			mr.Target[tp.Topic] = append(mr.Target[tp.Topic], tp.Partition)
		}
		r.Members = append(r.Members, mr)
	}
	return r
}

// Restore loads a stored membership (on a new coordinator): members get
// a fresh session from now, keep their target, and are assumed to own it.
func (g *Group) Restore(now time.Time, r GroupRecord) {
	g.Epoch, g.Assignor = r.Epoch, r.Assignor
	g.members = map[string]*Member{}
	g.target = assign.Assignment{}
	for _, mr := range r.Members {
		// A member's epoch moves to the group's at its next heartbeat
		// without a write (the group epoch itself is always written), so
		// it is the stored member epoch or the stored group epoch: accept
		// both.
		m := &Member{ID: mr.ID, InstanceID: mr.InstanceID, ClientID: mr.ClientID, Epoch: r.Epoch, prevEpoch: mr.Epoch,
			Topics: mr.Topics, Regex: mr.TopicRegex,
			Session:   clampDuration(mr.SessionTimeoutMs, DefaultSession, minSession, maxSession),
			Rebalance: clampDuration(mr.RebalanceMs, DefaultRebalance, minSession, maxSession)}
		if m.Regex != "" {
			m.re, _ = regexp.Compile("^(?:" + m.Regex + ")$")
		}
		m.deadline = now.Add(m.Session)
		for t, ps := range mr.Target {
			for _, p := range ps {
				m.owned = append(m.owned, assign.TopicPartition{Topic: t, Partition: p})
			}
		}
		slices.SortFunc(m.owned, assign.Compare)
		m.told, m.reconciled = m.owned, true
		g.target[m.ID] = m.owned
		g.members[m.ID] = m
	}
}

func flatten(tps []*v1.TopicPartitions) []assign.TopicPartition {
	var out []assign.TopicPartition
	for _, t := range tps {
		for _, p := range t.Partitions {
			out = append(out, assign.TopicPartition{Topic: t.Topic, Partition: p})
		}
	}
	slices.SortFunc(out, assign.Compare)
	return slices.Compact(out)
}

func grouped(tps []assign.TopicPartition) []*v1.TopicPartitions {
	var out []*v1.TopicPartitions
	for _, tp := range tps {
		if n := len(out); n > 0 && out[n-1].Topic == tp.Topic {
			out[n-1].Partitions = append(out[n-1].Partitions, tp.Partition)
			continue
		}
		out = append(out, &v1.TopicPartitions{Topic: tp.Topic, Partitions: []int32{tp.Partition}})
	}
	return out
}

func newMemberID() string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b[:])
}
