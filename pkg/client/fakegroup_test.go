package client

import (
	"context"
	"fmt"
	"maps"
	"net"
	"regexp"
	"slices"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
)

// fakeGroups is the fake broker's group coordinator: the rules of
// api/v1's group calls, in memory, for the client's tests. It keeps
// member epochs and fences stale ones (heartbeats and commits), assigns
// partitions round-robin over the members sorted by id, and withholds a
// partition from its new owner while another member still holds it:
// reports owning it, or was given it and may be reading it before its
// next heartbeat says so. Sessions do not expire by the clock: tests call
// expire. It records what happened (log) so tests can check the order of
// commits, releases and assignments.
type fakeGroups struct {
	interval     time.Duration // heartbeat interval given to members; 0 = 20ms
	groups       map[string]*fakeGroup
	nextID       int
	log          []fakeEvent
	beforeCommit func(g *fakeGroup, r *v1.CommitOffsetsRequest) // test hook, run under f.mu
}

type fakeGroup struct {
	epoch   int32
	members map[string]*fakeMember
	offsets map[TopicPartition]int64
}

type fakeMember struct {
	id, instance string
	epoch        int32
	topics       []string
	regex        string
	target       map[TopicPartition]bool // what the assignor gives it
	owned        map[TopicPartition]bool // what it last said it owns
	given        map[TopicPartition]bool // the last assignment sent to it
	revoking     map[TopicPartition]bool // taken from given; held until a report at the new epoch lacks them
	away         bool                    // a static member that left with -2
}

// fakeEvent is one thing the coordinator saw: a commit, a partition
// released (reported no longer owned) or given, a join, a leave.
type fakeEvent struct {
	kind   string // "commit", "release", "give", "join", "leave", "fenced"
	member string
	tp     TopicPartition
	offset int64
}

func (e fakeEvent) String() string {
	return fmt.Sprintf("%s %s %s@%d", e.kind, e.member, e.tp, e.offset)
}

// group returns a group, making it. Caller holds f.mu.
func (f *fakeBroker) group(name string) *fakeGroup {
	if f.groups.groups == nil {
		f.groups.groups = make(map[string]*fakeGroup)
	}
	g, ok := f.groups.groups[name]
	if !ok {
		g = &fakeGroup{members: make(map[string]*fakeMember), offsets: make(map[TopicPartition]int64)}
		f.groups.groups[name] = g
	}
	return g
}

func (f *fakeBroker) event(kind, member string, tp TopicPartition, offset int64) {
	f.groups.log = append(f.groups.log, fakeEvent{kind, member, tp, offset})
}

// events returns a copy of the log.
func (f *fakeBroker) events() []fakeEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.groups.log)
}

// committed returns a group's committed offsets.
func (f *fakeBroker) committed(group string) map[TopicPartition]int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.group(group).offsets)
}

// members returns a group's member ids, sorted.
func (f *fakeBroker) members(group string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for id, m := range f.group(group).members {
		if !m.away {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// expire removes a member as a session timeout would: its next heartbeat
// gets UNKNOWN_MEMBER.
func (f *fakeBroker) expire(group, member string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g := f.group(group)
	delete(g.members, member)
	f.event("fenced", member, TopicPartition{}, 0)
	f.rebalance(g)
}

// fence bumps a member's epoch behind its back: its next heartbeat and
// commits get FENCED_MEMBER_EPOCH.
func (f *fakeBroker) fence(group, member string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m := f.group(group).members[member]; m != nil {
		m.epoch += 100
	}
}

func (f *fakeBroker) FindCoordinator(_ context.Context, r *v1.FindCoordinatorRequest) (*v1.FindCoordinatorResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.injected("FindCoordinator"); err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(f.addr)
	return &v1.FindCoordinatorResponse{NodeId: 1, ApiAddr: net.JoinHostPort("0.0.0.0", port)}, nil
}

func (f *fakeBroker) GroupHeartbeat(_ context.Context, r *v1.GroupHeartbeatRequest) (*v1.GroupHeartbeatResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.injected("GroupHeartbeat"); err != nil {
		return nil, err
	}
	fail := func(code v1.ErrorCode, format string, args ...any) (*v1.GroupHeartbeatResponse, error) {
		return nil, apierr.ToStatus(apierr.New(code, format, args...))
	}
	if (len(r.Topics) == 0) == (r.TopicRegex == "") && r.MemberEpoch == 0 {
		return fail(v1.ErrorCode_ERROR_CODE_INVALID_REQUEST, "subscribe by topics or by regex")
	}
	g := f.group(r.Group)
	var m *fakeMember
	switch r.MemberEpoch {
	case 0:
		if len(r.Owned) > 0 {
			return fail(v1.ErrorCode_ERROR_CODE_INVALID_REQUEST, "a joining member owns nothing")
		}
		if old := g.members[r.MemberId]; r.MemberId != "" && old != nil {
			m = old // a fenced member rejoining: it owns nothing now
			m.epoch, m.given = 0, map[TopicPartition]bool{}
		}
		if r.InstanceId != "" && m == nil {
			for _, old := range g.members {
				if old.instance == r.InstanceId {
					m = old // a static member back: its partitions and epoch wait for it
					delete(g.members, old.id)
				}
			}
		}
		id := r.MemberId
		if m == nil || m.id != r.MemberId {
			f.groups.nextID++
			id = fmt.Sprintf("m%d", f.groups.nextID)
		}
		if m == nil {
			m = &fakeMember{target: map[TopicPartition]bool{}, given: map[TopicPartition]bool{}}
		}
		m.id, m.instance, m.away, m.owned, m.revoking = id, r.InstanceId, false, map[TopicPartition]bool{}, map[TopicPartition]bool{}
		g.members[id] = m
		f.event("join", id, TopicPartition{}, 0)
	case -1, -2:
		m = g.members[r.MemberId]
		if m == nil {
			return fail(v1.ErrorCode_ERROR_CODE_UNKNOWN_MEMBER, "member %q is not in group %q", r.MemberId, r.Group)
		}
		f.event("leave", m.id, TopicPartition{}, int64(r.MemberEpoch))
		if r.MemberEpoch == -2 && m.instance != "" {
			m.away, m.owned = true, map[TopicPartition]bool{}
		} else {
			delete(g.members, m.id)
			f.rebalance(g)
		}
		return &v1.GroupHeartbeatResponse{MemberId: m.id, MemberEpoch: r.MemberEpoch}, nil
	default:
		m = g.members[r.MemberId]
		if m == nil || m.away {
			return fail(v1.ErrorCode_ERROR_CODE_UNKNOWN_MEMBER, "member %q is not in group %q", r.MemberId, r.Group)
		}
		if r.MemberEpoch != m.epoch {
			return fail(v1.ErrorCode_ERROR_CODE_FENCED_MEMBER_EPOCH, "member %q: epoch %d is stale (%d)", m.id, r.MemberEpoch, m.epoch)
		}
	}
	if !r.OwnedUnchanged {
		owned := make(map[TopicPartition]bool)
		for _, tp := range fromTopics(r.Owned) {
			owned[tp] = true
		}
		for tp := range m.owned {
			if !owned[tp] {
				f.event("release", m.id, tp, 0)
			}
		}
		m.owned = owned
	}
	// A report lacking a revoked partition releases it only if it was
	// made after the member heard of the revoke (at its new epoch): one
	// made before may predate the member taking the partition at all.
	if r.MemberEpoch == m.epoch {
		for tp := range m.revoking {
			if !m.owned[tp] {
				delete(m.revoking, tp)
			}
		}
	}
	if r.MemberEpoch == 0 || !slices.Equal(m.topics, r.Topics) || m.regex != r.TopicRegex {
		m.topics, m.regex = slices.Clone(r.Topics), r.TopicRegex
		f.rebalance(g)
	}
	// Give the target, less what another member still holds: what it
	// reported owning, what it was last given (it may be reading it
	// before its next heartbeat says so, as consumer.Group.tell allows
	// for), and what was taken from it until a report made after it
	// heard so lacks it.
	given := make(map[TopicPartition]bool)
	for tp := range m.target {
		free := true
		for _, o := range g.members {
			if o != m && (o.owned[tp] || o.given[tp] || o.revoking[tp]) {
				free = false
			}
		}
		if free {
			given[tp] = true
		}
	}
	if !maps.Equal(given, m.given) || m.epoch == 0 {
		for _, tp := range sortedTPs(given) {
			if !m.given[tp] {
				f.event("give", m.id, tp, 0)
			}
		}
		for tp := range m.given {
			if !given[tp] {
				m.revoking[tp] = true
			}
		}
		m.given = given
		m.epoch = g.epoch
	}
	return &v1.GroupHeartbeatResponse{MemberId: m.id, MemberEpoch: m.epoch,
		HeartbeatIntervalMs: int32(cmpDur(f.groups.interval, 20*time.Millisecond).Milliseconds()),
		Assignment:          byTopic(sortedTPs(given))}, nil
}

func cmpDur(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// rebalance bumps the group epoch and computes every member's target,
// stickily: a partition stays with the member it was assigned to while
// that member subscribes to it and has fewer than its share (N/K,
// rounded up); the rest go to the subscribed member with the fewest, the
// lowest id first. Caller holds f.mu.
func (f *fakeBroker) rebalance(g *fakeGroup) {
	g.epoch++
	ids := slices.Sorted(maps.Keys(g.members))
	prev := make(map[TopicPartition]string)
	for _, id := range ids {
		for tp := range g.members[id].target {
			prev[tp] = id
		}
		g.members[id].target = make(map[TopicPartition]bool)
	}
	var all []TopicPartition
	for _, topic := range slices.Sorted(maps.Keys(f.topics)) {
		for p := range f.topics[topic] {
			tp := TopicPartition{topic, int32(p)}
			for _, id := range ids {
				if g.members[id].subscribes(topic) {
					all = append(all, tp)
					break
				}
			}
		}
	}
	if len(ids) == 0 {
		return
	}
	share := (len(all) + len(ids) - 1) / len(ids)
	var rest []TopicPartition
	for _, tp := range all {
		if m := g.members[prev[tp]]; m != nil && m.subscribes(tp.Topic) && len(m.target) < share {
			m.target[tp] = true
		} else {
			rest = append(rest, tp)
		}
	}
	for _, tp := range rest {
		var best *fakeMember
		for _, id := range ids {
			if m := g.members[id]; m.subscribes(tp.Topic) && (best == nil || len(m.target) < len(best.target)) {
				best = m
			}
		}
		best.target[tp] = true
	}
}

func (m *fakeMember) subscribes(topic string) bool {
	if m.regex != "" {
		return regexp.MustCompile("^(?:" + m.regex + ")$").MatchString(topic) // whole names, like the broker
	}
	return slices.Contains(m.topics, topic)
}

func (f *fakeBroker) CommitOffsets(_ context.Context, r *v1.CommitOffsetsRequest) (*v1.CommitOffsetsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.injected("CommitOffsets"); err != nil {
		return nil, err
	}
	g := f.group(r.Group)
	if f.groups.beforeCommit != nil {
		f.groups.beforeCommit(g, r)
	}
	var perr *apierr.Error
	switch m := g.members[r.MemberId]; {
	case r.MemberId == "" && r.MemberEpoch == -1:
		if len(g.members) > 0 {
			return nil, apierr.ToStatus(apierr.New(v1.ErrorCode_ERROR_CODE_GROUP_NOT_EMPTY, "group %q has %d members", r.Group, len(g.members)))
		}
	case m == nil:
		perr = apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN_MEMBER, "member %q is not in group %q", r.MemberId, r.Group)
	case m.epoch != r.MemberEpoch:
		perr = apierr.New(v1.ErrorCode_ERROR_CODE_FENCED_MEMBER_EPOCH, "member %q: epoch %d is stale (%d)", m.id, r.MemberEpoch, m.epoch)
	}
	resp := &v1.CommitOffsetsResponse{}
	for _, o := range r.Offsets {
		res := &v1.CommitOffsetResult{Topic: o.Topic, Partition: o.Partition}
		resp.Results = append(resp.Results, res)
		if perr != nil {
			res.Error = apierr.ToProto(perr)
			continue
		}
		tp := TopicPartition{o.Topic, o.Partition}
		g.offsets[tp] = o.Offset
		f.event("commit", r.MemberId, tp, o.Offset)
	}
	return resp, nil
}

func (f *fakeBroker) FetchOffsets(_ context.Context, r *v1.FetchOffsetsRequest) (*v1.FetchOffsetsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.injected("FetchOffsets"); err != nil {
		return nil, err
	}
	g := f.group(r.Group)
	resp := &v1.FetchOffsetsResponse{}
	tps := fromTopics(r.Partitions)
	if len(tps) == 0 {
		tps = sortedTPs(g.offsets)
	}
	for _, tp := range tps {
		o, ok := g.offsets[tp]
		if !ok {
			o = -1
		}
		resp.Offsets = append(resp.Offsets, &v1.CommittedOffset{Topic: tp.Topic, Partition: tp.Partition, Offset: o})
	}
	return resp, nil
}

func (f *fakeBroker) ListGroups(context.Context, *v1.ListGroupsRequest) (*v1.ListGroupsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &v1.ListGroupsResponse{}
	for _, name := range slices.Sorted(maps.Keys(f.groups.groups)) {
		g := f.groups.groups[name]
		state := "stable"
		if len(g.members) == 0 {
			state = "empty"
		}
		resp.Groups = append(resp.Groups, &v1.GroupSummary{Group: name, State: state, Members: int32(len(g.members)), Coordinator: 1})
	}
	return resp, nil
}

func (f *fakeBroker) DescribeGroup(_ context.Context, r *v1.DescribeGroupRequest) (*v1.DescribeGroupResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g, ok := f.groups.groups[r.Group]
	if !ok {
		return nil, apierr.ToStatus(apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN_GROUP, "group %q does not exist", r.Group))
	}
	resp := &v1.DescribeGroupResponse{Group: r.Group, State: "stable", Epoch: g.epoch, Assignor: "roundrobin", Coordinator: 1}
	owner := make(map[TopicPartition]string)
	for _, id := range slices.Sorted(maps.Keys(g.members)) {
		m := g.members[id]
		resp.Members = append(resp.Members, &v1.GroupMemberDescription{MemberId: id, InstanceId: m.instance, MemberEpoch: m.epoch,
			Assignment: byTopic(sortedTPs(m.given)), Topics: m.topics, TopicRegex: m.regex})
		for tp := range m.owned {
			owner[tp] = id
		}
	}
	for topic, ps := range f.topics {
		for p, fp := range ps {
			tp := TopicPartition{topic, int32(p)}
			c, ok := g.offsets[tp]
			if !ok && owner[tp] == "" {
				continue
			}
			lag := fp.next - c
			if !ok {
				c, lag = -1, fp.next-fp.logStart
			}
			resp.Partitions = append(resp.Partitions, &v1.GroupPartitionLag{Topic: topic, Partition: int32(p), Committed: c, LogEnd: fp.next, Lag: lag, MemberId: owner[tp]})
			resp.TotalLag += lag
		}
	}
	slices.SortFunc(resp.Partitions, func(a, b *v1.GroupPartitionLag) int {
		return TopicPartition{a.Topic, a.Partition}.compare(TopicPartition{b.Topic, b.Partition})
	})
	return resp, nil
}

func (f *fakeBroker) DeleteGroup(_ context.Context, r *v1.DeleteGroupRequest) (*v1.DeleteGroupResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g, ok := f.groups.groups[r.Group]
	switch {
	case !ok:
		return nil, apierr.ToStatus(apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN_GROUP, "group %q does not exist", r.Group))
	case len(g.members) > 0:
		return nil, apierr.ToStatus(apierr.New(v1.ErrorCode_ERROR_CODE_GROUP_NOT_EMPTY, "group %q has %d members", r.Group, len(g.members)))
	}
	delete(f.groups.groups, r.Group)
	return &v1.DeleteGroupResponse{}, nil
}
