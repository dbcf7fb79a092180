package consumer

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/record"
)

// Store is one offsets-topic partition as its coordinator writes it:
// Append returns once the records are committed (replicated and, by
// default, fsynced on a majority).
type Store interface {
	Append(ctx context.Context, recs []record.Record) error
}

// Coordinator holds the groups of the offsets partitions this broker
// leads ("homes"). The broker adds a home when it gains leadership of an
// offsets partition (after loading it with Load) and drops it when it
// loses it. Calls for a group whose home is not here fail with
// NOT_COORDINATOR. Safe for concurrent use: one lock for the homes, one
// per group held across the group's writes, so that a group's records
// reach the log in the order its state changed.
type Coordinator struct {
	now func() time.Time

	mu    sync.Mutex
	homes map[int32]*Home
}

// Home is one offsets partition's groups on its coordinator.
type Home struct {
	Partition int32
	store     Store
	mu        sync.Mutex
	groups    map[string]*lockedGroup
}

type lockedGroup struct {
	mu sync.Mutex
	g  *Group
}

// NewCoordinator makes a coordinator with no homes; now is its clock.
func NewCoordinator(now func() time.Time) *Coordinator {
	if now == nil {
		now = time.Now
	}
	return &Coordinator{now: now, homes: map[int32]*Home{}}
}

// Load builds a home from an offsets partition's records (oldest first):
// the latest record per key wins and tombstones delete. next returns the
// next record, ok=false at the end.
func (c *Coordinator) Load(partition int32, store Store, next func() (key, value []byte, ok bool, err error)) (*Home, error) {
	h := &Home{Partition: partition, store: store, groups: map[string]*lockedGroup{}}
	records := map[string]*GroupRecord{}
	for {
		k, v, ok, err := next()
		if err != nil {
			return nil, fmt.Errorf("consumer: load offsets partition %d: %w", partition, err)
		}
		if !ok {
			break
		}
		d, known, err := DecodeRecord(k, v)
		if err != nil || !known {
			continue // a damaged or future record: skip it, keep the rest
		}
		lg := h.groups[d.Group]
		if lg == nil {
			lg = &lockedGroup{g: NewGroup(d.Group)}
			h.groups[d.Group] = lg
		}
		switch {
		case d.Offset != nil:
			lg.g.offsets[topicPartition{d.Topic, d.Partition}] = *d.Offset
		case d.Tombstone && d.Topic != "":
			delete(lg.g.offsets, topicPartition{d.Topic, d.Partition})
		case d.Members != nil:
			records[d.Group] = d.Members
		case d.Tombstone:
			delete(records, d.Group)
			lg.g = NewGroup(d.Group) // deleted; offsets after this belong to a new group
		}
	}
	now := c.now()
	for name, r := range records {
		h.groups[name].g.Restore(now, *r)
	}
	for name, lg := range h.groups {
		if !lg.g.Active() && len(lg.g.offsets) == 0 {
			delete(h.groups, name)
		}
	}
	return h, nil
}

// AddHome makes this coordinator serve h's groups.
func (c *Coordinator) AddHome(h *Home) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.homes[h.Partition] = h
}

// DropHome stops serving an offsets partition (leadership moved).
func (c *Coordinator) DropHome(partition int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.homes, partition)
}

// Homes lists the offsets partitions served here.
func (c *Coordinator) Homes() []*Home {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.SortedFunc(maps.Values(c.homes), func(a, b *Home) int { return int(a.Partition - b.Partition) })
}

// Home returns the home of an offsets partition, nil when not served here.
func (c *Coordinator) Home(partition int32) *Home {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.homes[partition]
}

// group returns the named group, creating it if create.
func (h *Home) group(name string, create bool) *lockedGroup {
	h.mu.Lock()
	defer h.mu.Unlock()
	lg := h.groups[name]
	if lg == nil && create {
		lg = &lockedGroup{g: NewGroup(name)}
		h.groups[name] = lg
	}
	return lg
}

// Names lists the groups of the home.
func (h *Home) Names() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Sorted(maps.Keys(h.groups))
}

// With runs fn on the named group under its lock (nil if none).
func (h *Home) With(name string, fn func(g *Group)) {
	lg := h.group(name, false)
	if lg == nil {
		fn(nil)
		return
	}
	lg.mu.Lock()
	defer lg.mu.Unlock()
	fn(lg.g)
}

// Heartbeat applies a member's heartbeat, persisting the group first when
// its membership changed.
func (h *Home) Heartbeat(ctx context.Context, now time.Time, req *v1.GroupHeartbeatRequest, topics map[string]int32) (*v1.GroupHeartbeatResponse, error) {
	lg := h.group(req.Group, req.MemberEpoch == 0)
	if lg == nil {
		if req.MemberEpoch < 0 {
			return &v1.GroupHeartbeatResponse{MemberId: req.MemberId, MemberEpoch: req.MemberEpoch}, nil
		}
		return nil, apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN_MEMBER, "group %s has no member %s: join again with epoch 0", req.Group, req.MemberId)
	}
	lg.mu.Lock()
	defer lg.mu.Unlock()
	resp, changed, err := lg.g.Heartbeat(now, req, topics)
	if err != nil || !changed {
		return resp, err
	}
	if err := h.saveGroup(ctx, lg.g, now); err != nil {
		return nil, err
	}
	return resp, nil
}

func (h *Home) saveGroup(ctx context.Context, g *Group, now time.Time) error {
	v, err := json.Marshal(g.Record())
	if err != nil {
		return err
	}
	return h.store.Append(ctx, []record.Record{{Key: GroupKey(g.Name), Value: v, Timestamp: now}})
}

// Expire removes expired members from every group of the home, persisting
// each changed group. It returns the member ids removed, by group.
func (h *Home) Expire(ctx context.Context, now time.Time, topics map[string]int32) (map[string][]string, error) {
	out := map[string][]string{}
	for _, name := range h.Names() {
		lg := h.group(name, false)
		if lg == nil {
			continue
		}
		lg.mu.Lock()
		gone := lg.g.Expire(now, topics)
		var err error
		if len(gone) > 0 {
			out[name] = gone
			err = h.saveGroup(ctx, lg.g, now)
		}
		lg.mu.Unlock()
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// Commit stores the offsets a member (or an admin, with an empty member
// and epoch -1) commits. Offsets it may not commit get a per-partition
// error; the rest are stored with one append.
func (h *Home) Commit(ctx context.Context, now time.Time, req *v1.CommitOffsetsRequest) (*v1.CommitOffsetsResponse, error) {
	lg := h.group(req.Group, req.MemberId == "" && req.MemberEpoch == -1)
	if lg == nil {
		return nil, apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN_MEMBER, "group %s has no member %s: join again", req.Group, req.MemberId)
	}
	lg.mu.Lock()
	defer lg.mu.Unlock()
	resp := &v1.CommitOffsetsResponse{}
	var recs []record.Record
	var vals []OffsetValue
	var ok []*v1.OffsetCommit
	for _, oc := range req.Offsets {
		r := &v1.CommitOffsetResult{Topic: oc.Topic, Partition: oc.Partition}
		resp.Results = append(resp.Results, r)
		err := lg.g.CanCommit(req.MemberId, req.MemberEpoch, oc.Topic, oc.Partition)
		if err == nil && oc.Offset < 0 {
			err = apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_REQUEST, "offset %d for %s/%d is negative", oc.Offset, oc.Topic, oc.Partition)
		}
		if err != nil {
			r.Error = apierr.ToProto(err)
			continue
		}
		v := OffsetValue{Offset: oc.Offset, Metadata: oc.Metadata, CommitTimeMs: now.UnixMilli(), Member: req.MemberId, Epoch: req.MemberEpoch}
		if old, had := lg.g.Committed(oc.Topic, oc.Partition); had && v.Member != "" && v.Offset <= old.Offset {
			continue // never backwards; nothing new to store
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		recs = append(recs, record.Record{Key: OffsetKey(req.Group, oc.Topic, oc.Partition), Value: b, Timestamp: now})
		vals = append(vals, v)
		ok = append(ok, oc)
	}
	if len(recs) > 0 {
		if err := h.store.Append(ctx, recs); err != nil {
			return nil, err
		}
		for i, oc := range ok {
			lg.g.Commit(oc.Topic, oc.Partition, vals[i])
		}
	}
	return resp, nil
}

// Delete deletes an empty group: tombstones for its record and offsets.
func (h *Home) Delete(ctx context.Context, now time.Time, name string) error {
	lg := h.group(name, false)
	if lg == nil {
		return apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN_GROUP, "group %s does not exist", name)
	}
	lg.mu.Lock()
	defer lg.mu.Unlock()
	if lg.g.Active() {
		return apierr.New(v1.ErrorCode_ERROR_CODE_GROUP_NOT_EMPTY, "group %s has active members: stop them before deleting it", name)
	}
	recs := []record.Record{{Key: GroupKey(name), Timestamp: now}}
	lg.g.CommittedAll(func(topic string, p int32, _ OffsetValue) {
		recs = append(recs, record.Record{Key: OffsetKey(name, topic, p), Timestamp: now})
	})
	if err := h.store.Append(ctx, recs); err != nil {
		return err
	}
	h.mu.Lock()
	delete(h.groups, name)
	h.mu.Unlock()
	return nil
}
