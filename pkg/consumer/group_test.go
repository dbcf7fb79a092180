package consumer

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/record"
)

// The group state machine, without a broker: time is a variable.

var t0 = time.UnixMilli(1_700_000_000_000)

type sim struct {
	t      *testing.T
	g      *Group
	now    time.Time
	topics map[string]int32
}

type simMember struct {
	req   *v1.GroupHeartbeatRequest
	owned []*v1.TopicPartitions
}

func (s *sim) beat(m *simMember) (*v1.GroupHeartbeatResponse, error) {
	s.t.Helper()
	m.req.Owned = m.owned
	resp, _, err := s.g.Heartbeat(s.now, m.req, s.topics)
	if err != nil {
		return nil, err
	}
	m.req.MemberId, m.req.MemberEpoch = resp.MemberId, resp.MemberEpoch
	m.owned = resp.Assignment
	return resp, nil
}

func count(tps []*v1.TopicPartitions) int {
	n := 0
	for _, tp := range tps {
		n += len(tp.Partitions)
	}
	return n
}

func TestGroupRegexPicksUpNewTopics(t *testing.T) {
	s := &sim{t: t, g: NewGroup("g"), now: t0, topics: map[string]int32{"orders-eu": 2, "payments": 3, "__consumer_offsets": 8}}
	m := &simMember{req: &v1.GroupHeartbeatRequest{Group: "g", TopicRegex: "orders-.*|__.*"}}
	if _, err := s.beat(m); err != nil {
		t.Fatal(err)
	}
	if count(m.owned) != 2 {
		t.Fatalf("regex member owns %v, want orders-eu's 2 partitions (internal topics only by name)", m.owned)
	}
	s.topics["orders-us"] = 4
	s.topics["orders-eu"] = 3 // partitions added
	epoch := s.g.Epoch
	if _, err := s.beat(m); err != nil {
		t.Fatal(err)
	}
	if count(m.owned) != 7 || s.g.Epoch == epoch {
		t.Fatalf("after new topics and partitions the member owns %v (epoch %d → %d)", m.owned, epoch, s.g.Epoch)
	}
	bad := &simMember{req: &v1.GroupHeartbeatRequest{Group: "g", TopicRegex: "("}}
	if _, err := s.beat(bad); !errors.Is(err, apierr.ErrInvalidRequest) {
		t.Fatalf("bad regex: %v", err)
	}
	none := &simMember{req: &v1.GroupHeartbeatRequest{Group: "g"}}
	if _, err := s.beat(none); !errors.Is(err, apierr.ErrInvalidRequest) {
		t.Fatalf("no subscription: %v", err)
	}
}

func TestGroupRevokeTimeoutFencesTheHolder(t *testing.T) {
	s := &sim{t: t, g: NewGroup("g"), now: t0, topics: map[string]int32{"t": 4}}
	a := &simMember{req: &v1.GroupHeartbeatRequest{Group: "g", Topics: []string{"t"}, SessionTimeoutMs: 10_000, RebalanceTimeoutMs: 3000}}
	b := &simMember{req: &v1.GroupHeartbeatRequest{Group: "g", Topics: []string{"t"}, SessionTimeoutMs: 10_000}}
	s.beat(a)
	if _, err := s.beat(b); err != nil {
		t.Fatal(err)
	}
	if count(b.owned) != 0 {
		t.Fatalf("b got %v while a still holds everything", b.owned)
	}
	// a heartbeats but never releases what it is asked to revoke.
	held := a.owned
	for range 3 {
		s.now = s.now.Add(time.Second)
		a.req.Owned = held
		resp, _, err := s.g.Heartbeat(s.now, a.req, s.topics)
		if err != nil {
			t.Fatal(err)
		}
		a.req.MemberEpoch = resp.MemberEpoch
		if gone := s.g.Expire(s.now, s.topics); len(gone) > 0 {
			t.Fatalf("a removed after %s", s.now.Sub(t0))
		}
	}
	s.now = s.now.Add(1500 * time.Millisecond)
	if gone := s.g.Expire(s.now, s.topics); len(gone) != 1 {
		t.Fatalf("a still in the group after its rebalance timeout: %v", gone)
	}
	if _, err := s.beat(b); err != nil || count(b.owned) != 4 {
		t.Fatalf("b owns %v after a was fenced (%v)", b.owned, err)
	}
	a.req.Owned = held
	if _, _, err := s.g.Heartbeat(s.now, a.req, s.topics); !errors.Is(err, apierr.ErrUnknownMember) {
		t.Fatalf("the fenced member's heartbeat: %v", err)
	}
	if err := s.g.CanCommit(a.req.MemberId, a.req.MemberEpoch, "t", 0); !errors.Is(err, apierr.ErrUnknownMember) {
		t.Fatalf("the fenced member's commit: %v", err)
	}
}

type memStore struct{ recs []record.Record }

func (m *memStore) Append(_ context.Context, recs []record.Record) error {
	m.recs = append(m.recs, recs...)
	return nil
}

func (m *memStore) reader() func() ([]byte, []byte, bool, error) {
	i := 0
	return func() ([]byte, []byte, bool, error) {
		if i == len(m.recs) {
			return nil, nil, false, nil
		}
		r := m.recs[i]
		i++
		return r.Key, r.Value, true, nil
	}
}

func TestCoordinatorFailoverRestoresGroupsAndOffsets(t *testing.T) {
	now := t0
	c := NewCoordinator(func() time.Time { return now })
	store := &memStore{}
	h, err := c.Load(0, store, store.reader())
	if err != nil {
		t.Fatal(err)
	}
	topics := map[string]int32{"t": 2}
	join := &v1.GroupHeartbeatRequest{Group: "g", Topics: []string{"t"}, InstanceId: "i1"}
	resp, err := h.Heartbeat(context.Background(), now, join, topics)
	if err != nil {
		t.Fatal(err)
	}
	cr, err := h.Commit(context.Background(), now, &v1.CommitOffsetsRequest{Group: "g", MemberId: resp.MemberId, MemberEpoch: resp.MemberEpoch,
		Offsets: []*v1.OffsetCommit{{Topic: "t", Partition: 0, Offset: 10}, {Topic: "t", Partition: 1, Offset: 20}}})
	if err != nil || cr.Results[0].Error != nil || cr.Results[1].Error != nil {
		t.Fatalf("commit: %+v, %v", cr, err)
	}
	// An empty group elsewhere, deleted: only tombstones remain for it.
	other := &v1.GroupHeartbeatRequest{Group: "gone", Topics: []string{"t"}}
	r2, _ := h.Heartbeat(context.Background(), now, other, topics)
	h.Commit(context.Background(), now, &v1.CommitOffsetsRequest{Group: "gone", MemberId: r2.MemberId, MemberEpoch: r2.MemberEpoch, Offsets: []*v1.OffsetCommit{{Topic: "t", Partition: 0, Offset: 5}}})
	h.Heartbeat(context.Background(), now, &v1.GroupHeartbeatRequest{Group: "gone", MemberId: r2.MemberId, MemberEpoch: -1}, topics)
	if err := h.Delete(context.Background(), now, "gone"); err != nil {
		t.Fatalf("delete: %v", err)
	}

	// A new coordinator loads the records.
	now = now.Add(time.Minute)
	c2 := NewCoordinator(func() time.Time { return now })
	h2, err := c2.Load(0, store, store.reader())
	if err != nil {
		t.Fatal(err)
	}
	if names := h2.Names(); !slices.Equal(names, []string{"g"}) {
		t.Fatalf("groups after load: %v", names)
	}
	h2.With("g", func(g *Group) {
		v0, _ := g.Committed("t", 0)
		v1_, _ := g.Committed("t", 1)
		if v0.Offset != 10 || v1_.Offset != 20 || len(g.Members()) != 1 {
			t.Fatalf("restored offsets %d, %d, %d members", v0.Offset, v1_.Offset, len(g.Members()))
		}
	})
	// The member carries on with its epoch, keeping its partitions.
	beat := &v1.GroupHeartbeatRequest{Group: "g", MemberId: resp.MemberId, MemberEpoch: resp.MemberEpoch, OwnedUnchanged: true}
	r3, err := h2.Heartbeat(context.Background(), now, beat, topics)
	if err != nil || count(r3.Assignment) != 2 {
		t.Fatalf("heartbeat on the new coordinator: %+v, %v", r3, err)
	}
}

func TestDecodeRecordRoundTrip(t *testing.T) {
	d, ok, err := DecodeRecord(OffsetKey("g", "t.x-1", 12), []byte(`{"offset":7,"commit_time_ms":1,"epoch":3}`))
	if err != nil || !ok || d.Group != "g" || d.Topic != "t.x-1" || d.Partition != 12 || d.Offset.Offset != 7 {
		t.Fatalf("offset record: %+v %v %v", d, ok, err)
	}
	d, ok, err = DecodeRecord(GroupKey("g"), nil)
	if err != nil || !ok || !d.Tombstone || d.Group != "g" {
		t.Fatalf("group tombstone: %+v %v %v", d, ok, err)
	}
	if _, ok, _ := DecodeRecord([]byte("zz"), nil); ok {
		t.Fatal("decoded an unknown record kind")
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(OffsetKey("g", "t", 1), []byte(`{"offset":1}`))
	f.Add(GroupKey("g"), []byte(`{"epoch":1,"members":[{"id":"m","target":{"t":[0,1]}}]}`))
	f.Add([]byte{'o', 0, 'g', 0, 't'}, []byte(nil))
	f.Fuzz(func(t *testing.T, key, value []byte) {
		d, ok, err := DecodeRecord(key, value)
		if err != nil || !ok {
			return
		}
		switch {
		case d.Offset != nil:
			if !bytes.Equal(OffsetKey(d.Group, d.Topic, d.Partition), key) && !bytes.Contains(key, []byte{'+'}) && !bytes.HasPrefix(key[bytes.LastIndexByte(key, 0)+1:], []byte{'0'}) {
				t.Fatalf("offset key %q decoded to %+v, which encodes differently", key, d)
			}
		case d.Members != nil:
			if !bytes.Equal(GroupKey(d.Group), key) {
				t.Fatalf("group key %q decoded to %q", key, d.Group)
			}
			// A restored group must not panic whatever the record says.
			NewGroup(d.Group).Restore(t0, *d.Members)
		}
	})
}

// A member's epoch moves to the group's at a heartbeat without a write;
// a new coordinator restoring the stored group must still accept it.
func TestRestoreAcceptsEpochsMovedWithoutAWrite(t *testing.T) {
	now := t0
	store := &memStore{}
	c := NewCoordinator(func() time.Time { return now })
	h, err := c.Load(0, store, store.reader())
	if err != nil {
		t.Fatal(err)
	}
	topics := map[string]int32{"t": 4}
	ctx := context.Background()
	r1, err := h.Heartbeat(ctx, now, &v1.GroupHeartbeatRequest{Group: "g", Topics: []string{"t"}}, topics)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Heartbeat(ctx, now, &v1.GroupHeartbeatRequest{Group: "g", Topics: []string{"t"}}, topics); err != nil {
		t.Fatal(err) // the second join bumps the group epoch (written)
	}
	r1b, err := h.Heartbeat(ctx, now, &v1.GroupHeartbeatRequest{Group: "g", MemberId: r1.MemberId, MemberEpoch: r1.MemberEpoch, Owned: r1.Assignment}, topics)
	if err != nil {
		t.Fatal(err)
	}
	if r1b.MemberEpoch == r1.MemberEpoch {
		t.Fatalf("member epoch did not move (%d)", r1.MemberEpoch)
	}
	h2, err := NewCoordinator(func() time.Time { return now }).Load(0, store, store.reader())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h2.Heartbeat(ctx, now, &v1.GroupHeartbeatRequest{Group: "g", MemberId: r1.MemberId, MemberEpoch: r1b.MemberEpoch, OwnedUnchanged: true}, topics); err != nil {
		t.Fatalf("heartbeat with the epoch moved after the last write, on the new coordinator: %v", err)
	}
	r, err := h2.Commit(ctx, now, &v1.CommitOffsetsRequest{Group: "g", MemberId: r1.MemberId, MemberEpoch: r1b.MemberEpoch,
		Offsets: []*v1.OffsetCommit{{Topic: "t", Partition: r1b.Assignment[0].Partitions[0], Offset: 3}}})
	if err != nil || r.Results[0].Error != nil {
		t.Fatalf("commit on the new coordinator: %+v, %v", r, err)
	}
}

// TestGroupWithholdsPartitionsAStaleHeartbeatWouldFree: member a is told
// all four partitions and starts reading them before it reports owning
// them. A heartbeat it sent before that (epoch of its join, "owned
// unchanged", so owning nothing) arrives after b joined: the coordinator
// takes t/2 and t/3 from a's share. Until a reports, at the epoch that
// told it so, that it no longer owns them, they are a's: b must not be
// told them, or both read them (found by a fake coordinator with the same
// hole, pkg/client's TestGroupRebalanceRevokesBeforeRelease).
func TestGroupWithholdsPartitionsAStaleHeartbeatWouldFree(t *testing.T) {
	s := &sim{t: t, g: NewGroup("g"), now: t0, topics: map[string]int32{"t": 4}}
	a := &simMember{req: &v1.GroupHeartbeatRequest{Group: "g", Topics: []string{"t"}}}
	if _, err := s.beat(a); err != nil {
		t.Fatal(err)
	}
	if count(a.owned) != 4 {
		t.Fatalf("a told %v, want all 4", a.owned)
	}
	stale := &v1.GroupHeartbeatRequest{Group: "g", MemberId: a.req.MemberId, MemberEpoch: a.req.MemberEpoch, OwnedUnchanged: true}
	b := &simMember{req: &v1.GroupHeartbeatRequest{Group: "g", Topics: []string{"t"}}}
	if _, err := s.beat(b); err != nil {
		t.Fatal(err)
	}
	// a's stale heartbeat arrives: a's share shrinks to 2.
	resp, _, err := s.g.Heartbeat(s.now, stale, s.topics)
	if err != nil {
		t.Fatal(err)
	}
	if count(resp.Assignment) != 2 {
		t.Fatalf("a told %v after b joined, want 2 partitions", resp.Assignment)
	}
	// b asks again before a heard of the revoke: nothing of a's.
	if _, err := s.beat(b); err != nil {
		t.Fatal(err)
	}
	if count(b.owned) != 0 {
		t.Fatalf("b told %v while a may still read all 4", b.owned)
	}
	// a, at its new epoch, reports owning only its 2: now b gets the rest.
	a.req.MemberEpoch, a.owned = resp.MemberEpoch, resp.Assignment
	a.req.OwnedUnchanged = false
	if _, err := s.beat(a); err != nil {
		t.Fatal(err)
	}
	if _, err := s.beat(b); err != nil {
		t.Fatal(err)
	}
	if count(b.owned) != 2 {
		t.Fatalf("b told %v after a released, want 2", b.owned)
	}
}
