package broker

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/consumer"
	"github.com/stratalog/strata/pkg/partition"
	"github.com/stratalog/strata/pkg/record"
)

// Consumer groups. A group lives in the __consumer_offsets partition its
// name hashes to; that partition's leader is its coordinator and keeps
// the group in memory (consumer.Coordinator), writing every change to the
// partition before answering. runGroups follows leadership: a broker that
// comes to lead an offsets partition loads it (the latest record per key)
// and serves its groups; one that loses it stops at once.

// groupTick is how often runGroups checks leadership and expires members.
const groupTick = 250 * time.Millisecond

func (b *Broker) runGroups(ctx context.Context) {
	every(ctx, groupTick, func() {
		b.followOffsetsLeadership(ctx)
		b.expireMembers(ctx)
	})
}

// followOffsetsLeadership loads the offsets partitions this broker now
// leads and drops those it no longer leads.
func (b *Broker) followOffsetsLeadership(ctx context.Context) {
	led := map[int32]*partition.Partition{}
	for _, p := range b.replicas.all() {
		if p.Topic() == consumer.OffsetsTopic && p.IsLeader() {
			led[p.ID()] = p
		}
	}
	for _, h := range b.coord.Homes() {
		if led[h.Partition] == nil {
			b.coord.DropHome(h.Partition)
			b.log.Info("no longer coordinating the groups of an offsets partition", zap.Int32("partition", h.Partition))
		}
	}
	for id, p := range led {
		if b.coord.Home(id) != nil {
			continue
		}
		start := time.Now()
		h, err := b.coord.Load(id, partitionStore{p}, partitionReader(ctx, p))
		if err != nil {
			b.log.Warn("loading an offsets partition failed; retrying", zap.Int32("partition", id), zap.Error(err))
			continue
		}
		if !p.IsLeader() {
			continue // lost it while loading
		}
		b.coord.AddHome(h)
		b.log.Info("coordinating the groups of an offsets partition", zap.Int32("partition", id),
			zap.Int("groups", len(h.Names())), zap.Duration("load", time.Since(start)))
	}
}

func (b *Broker) expireMembers(ctx context.Context) {
	topics := b.topicPartitions()
	for _, h := range b.coord.Homes() {
		gone, err := h.Expire(ctx, b.now(), topics)
		for g, ids := range gone {
			b.log.Info("group members expired", zap.String("group", g), zap.Strings("members", ids))
		}
		if err != nil {
			b.log.Warn("persisting expired group members", zap.Int32("partition", h.Partition), zap.Error(err))
		}
	}
}

// topicPartitions is every topic's partition count, for subscriptions.
func (b *Broker) topicPartitions() map[string]int32 {
	out := map[string]int32{}
	for _, t := range b.meta.Topics() {
		out[t.Name] = t.Partitions
	}
	return out
}

// partitionStore writes group records to an offsets partition.
type partitionStore struct{ p *partition.Partition }

func (s partitionStore) Append(ctx context.Context, recs []record.Record) error {
	b, err := record.Encode(recs, record.EncodeOptions{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1})
	if err != nil {
		return err
	}
	_, err = s.p.Append(ctx, [][]byte{b}, partition.AcksQuorum)
	return err
}

// partitionReader reads an offsets partition from its start to its high
// watermark, one record at a time.
func partitionReader(ctx context.Context, p *partition.Partition) func() ([]byte, []byte, bool, error) {
	offset, hwm := p.LogStartOffset(), p.HighWatermark()
	var recs []record.Record
	return func() ([]byte, []byte, bool, error) {
		for len(recs) == 0 {
			if offset >= hwm {
				return nil, nil, false, nil
			}
			if err := ctx.Err(); err != nil {
				return nil, nil, false, err
			}
			data, err := p.Read(offset, 4<<20)
			if err != nil {
				return nil, nil, false, err
			}
			if len(data) == 0 {
				return nil, nil, false, fmt.Errorf("no data at offset %d below the high watermark %d", offset, hwm)
			}
			for rest := data; len(rest) > 0; {
				batch, h, more, err := record.Next(rest)
				if err != nil {
					return nil, nil, false, err
				}
				rs, err := record.Decode(batch, record.DecodeOptions{})
				if err != nil {
					return nil, nil, false, err
				}
				for _, r := range rs {
					if r.Offset >= offset && r.Offset < hwm {
						recs = append(recs, r)
					}
				}
				offset, rest = max(offset, h.NextOffset()), more
			}
		}
		r := recs[0]
		recs = recs[1:]
		return r.Key, r.Value, true, nil
	}
}

// ensureOffsetsTopic creates __consumer_offsets on first use.
func (b *Broker) ensureOffsetsTopic(ctx context.Context) (int32, error) {
	if t, ok := b.meta.Topic(consumer.OffsetsTopic); ok {
		return t.Partitions, nil
	}
	rf := min(defaultReplication, int32(max(len(b.liveBrokers()), 1)))
	_, err := b.createAnyTopic(ctx, consumer.OffsetsTopic, b.cfg.OffsetsPartitions, rf,
		map[string]string{"cleanup.policy": "compact", "segment.bytes": "104857600"}, false)
	if err != nil && !apierr.ErrTopicExists.Is(apierr.FromError(err)) {
		return 0, err
	}
	t, ok := b.meta.Topic(consumer.OffsetsTopic)
	if !ok {
		return 0, apierr.New(v1.ErrorCode_ERROR_CODE_UNAVAILABLE, "the consumer offsets topic is being created; retry")
	}
	return t.Partitions, nil
}

// coordinatorOf returns the offsets partition of group and its leader
// (0 when none yet), creating the offsets topic on first use.
func (b *Broker) coordinatorOf(ctx context.Context, group string) (p int32, leader uint32, err error) {
	if err := consumer.ValidateGroup(group); err != nil {
		return 0, 0, apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_REQUEST, "%v", err)
	}
	n, err := b.ensureOffsetsTopic(ctx)
	if err != nil {
		return 0, 0, err
	}
	p = consumer.PartitionFor(group, n)
	if t, ok := b.meta.Topic(consumer.OffsetsTopic); ok && int(p) < len(t.Assignments) {
		leader = t.Assignments[p].Leader
	}
	return p, leader, nil
}

// home returns the coordinator state of group, if this broker coordinates
// it, or NOT_COORDINATOR naming the coordinator. The state is answered from
// memory, so only while the offsets partition's leader holds a read lease
// (read_lease.go): a deposed leader's copy may have moved on elsewhere.
func (b *Broker) home(ctx context.Context, group string) (*consumer.Home, error) {
	p, leader, err := b.coordinatorOf(ctx, group)
	if err != nil {
		return nil, err
	}
	why := ""
	if h := b.coord.Home(p); h != nil {
		if part, ok := b.replicas.get(b.offsetsGroupName(p)); ok && part.IsLeader() {
			err := b.readLease(ctx, part)
			if err == nil {
				return h, nil
			}
			if cerr := ctx.Err(); cerr != nil {
				return nil, cerr
			}
			why = ": " + apierr.FromError(err).Message
		}
	}
	e := &apierr.Error{Code: v1.ErrorCode_ERROR_CODE_NOT_COORDINATOR, LeaderID: leader,
		Message: fmt.Sprintf("broker %d does not coordinate group %s (offsets partition %d)%s", b.cfg.NodeID, group, p, why)}
	if addr, ok := b.brokerAPI(leader); ok && leader != 0 {
		e.LeaderAddr = addr
	}
	return nil, e
}

func (b *Broker) offsetsGroupName(p int32) string {
	t, _ := b.meta.Topic(consumer.OffsetsTopic)
	return t.GroupName(p)
}

// FindCoordinator names the broker that coordinates a group.
func (b *Broker) FindCoordinator(ctx context.Context, req *v1.FindCoordinatorRequest) (*v1.FindCoordinatorResponse, error) {
	p, leader, err := b.coordinatorOf(ctx, req.Group)
	if err != nil {
		return nil, apierr.ToStatus(err)
	}
	if leader == 0 {
		return nil, apierr.ToStatus(apierr.New(v1.ErrorCode_ERROR_CODE_NOT_COORDINATOR, "offsets partition %d has no leader yet; retry", p))
	}
	addr, _ := b.listenerAddrOf(ctx, leader)
	return &v1.FindCoordinatorResponse{NodeId: leader, ApiAddr: addr, OffsetsPartition: p}, nil
}

// GroupHeartbeat joins, heartbeats and leaves (see consumer.Group).
func (b *Broker) GroupHeartbeat(ctx context.Context, req *v1.GroupHeartbeatRequest) (*v1.GroupHeartbeatResponse, error) {
	h, err := b.home(ctx, req.Group)
	if err != nil {
		return nil, apierr.ToStatus(err)
	}
	resp, err := h.Heartbeat(ctx, b.now(), req, b.topicPartitions())
	if err != nil {
		return nil, apierr.ToStatus(b.groupWriteError(err))
	}
	return resp, nil
}

// CommitOffsets stores committed offsets, fenced by member epoch.
//
// A member commits only partitions it was assigned. An admin commit (no
// member, epoch -1: a seek) names partitions itself: those of a topic that
// does not exist, or out of its range, get UNKNOWN_TOPIC or
// UNKNOWN_PARTITION, as Kafka answers, and are not stored (a client could
// otherwise fill the offsets topic with offsets of nothing).
func (b *Broker) CommitOffsets(ctx context.Context, req *v1.CommitOffsetsRequest) (*v1.CommitOffsetsResponse, error) {
	h, err := b.home(ctx, req.Group)
	if err != nil {
		return nil, apierr.ToStatus(err)
	}
	refused := map[int]error{}
	asked := req.Offsets
	if req.MemberId == "" && req.MemberEpoch == -1 {
		var keep []*v1.OffsetCommit
		for i, oc := range req.Offsets {
			if err := b.partitionExists(oc.Topic, oc.Partition); err != nil {
				refused[i] = err
				continue
			}
			keep = append(keep, oc)
		}
		if len(refused) > 0 {
			req = &v1.CommitOffsetsRequest{Group: req.Group, MemberId: req.MemberId, MemberEpoch: req.MemberEpoch, Offsets: keep}
		}
	}
	resp := &v1.CommitOffsetsResponse{}
	if len(req.Offsets) > 0 || len(refused) == 0 {
		if resp, err = h.Commit(ctx, b.now(), req); err != nil {
			return nil, apierr.ToStatus(b.groupWriteError(err))
		}
	}
	if len(refused) == 0 {
		return resp, nil
	}
	// Answer in the request's order.
	all := make([]*v1.CommitOffsetResult, 0, len(resp.Results)+len(refused))
	stored := resp.Results
	for i := range len(resp.Results) + len(refused) {
		if err, ok := refused[i]; ok {
			all = append(all, &v1.CommitOffsetResult{Topic: asked[i].Topic, Partition: asked[i].Partition, Error: apierr.ToProto(err)})
			continue
		}
		all = append(all, stored[0])
		stored = stored[1:]
	}
	resp.Results = all
	return resp, nil
}

// partitionExists is nil for an existing topic's partition, else
// UNKNOWN_TOPIC or UNKNOWN_PARTITION.
func (b *Broker) partitionExists(topic string, p int32) error {
	t, ok := b.meta.Topic(topic)
	if !ok {
		return apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN_TOPIC, "topic %q does not exist", topic)
	}
	if p < 0 || int(p) >= len(t.Assignments) {
		return apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN_PARTITION, "topic %q has partitions 0 to %d, not %d", topic, len(t.Assignments)-1, p)
	}
	return nil
}

// groupWriteError: an offsets partition that lost its leadership mid-write
// means the group moved.
func (b *Broker) groupWriteError(err error) error {
	if apierr.ErrNotLeader.Is(apierr.FromError(err)) {
		return apierr.New(v1.ErrorCode_ERROR_CODE_NOT_COORDINATOR, "the group's coordinator moved: find it again (%v)", err)
	}
	return err
}

// FetchOffsets returns a group's committed offsets.
func (b *Broker) FetchOffsets(ctx context.Context, req *v1.FetchOffsetsRequest) (*v1.FetchOffsetsResponse, error) {
	h, err := b.home(ctx, req.Group)
	if err != nil {
		return nil, apierr.ToStatus(err)
	}
	resp := &v1.FetchOffsetsResponse{}
	add := func(topic string, p int32, v consumer.OffsetValue, ok bool) {
		c := &v1.CommittedOffset{Topic: topic, Partition: p, Offset: -1}
		if ok {
			c.Offset, c.Metadata, c.CommitTimeMs = v.Offset, v.Metadata, v.CommitTimeMs
		}
		resp.Offsets = append(resp.Offsets, c)
	}
	h.With(req.Group, func(g *consumer.Group) {
		if len(req.Partitions) == 0 {
			if g != nil {
				g.CommittedAll(func(t string, p int32, v consumer.OffsetValue) { add(t, p, v, true) })
			}
			return
		}
		for _, tp := range req.Partitions {
			for _, p := range tp.Partitions {
				var v consumer.OffsetValue
				ok := false
				if g != nil {
					v, ok = g.Committed(tp.Topic, p)
				}
				add(tp.Topic, p, v, ok)
			}
		}
	})
	return resp, nil
}
