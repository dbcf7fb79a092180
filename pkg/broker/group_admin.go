package broker

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/consumer"
)

// ListGroups lists the groups this broker coordinates.
func (b *Broker) ListGroups(ctx context.Context, _ *v1.ListGroupsRequest) (*v1.ListGroupsResponse, error) {
	resp := &v1.ListGroupsResponse{}
	for _, h := range b.coord.Homes() {
		for _, name := range h.Names() {
			h.With(name, func(g *consumer.Group) {
				if g == nil {
					return
				}
				resp.Groups = append(resp.Groups, &v1.GroupSummary{
					Group: name, State: g.State(), Members: int32(len(g.Members())), Coordinator: b.cfg.NodeID,
				})
			})
		}
	}
	return resp, nil
}

// DescribeGroup describes a group: members, their assignments, and per
// partition the committed offset, the log end and the lag.
func (b *Broker) DescribeGroup(ctx context.Context, req *v1.DescribeGroupRequest) (*v1.DescribeGroupResponse, error) {
	h, err := b.home(ctx, req.Group)
	if err != nil {
		return nil, apierr.ToStatus(err)
	}
	resp := &v1.DescribeGroupResponse{Group: req.Group, Coordinator: b.cfg.NodeID}
	type tp struct {
		topic string
		p     int32
	}
	var parts []tp
	committed := map[tp]int64{}
	owner := map[tp]string{}
	found := false
	h.With(req.Group, func(g *consumer.Group) {
		if g == nil {
			return
		}
		found = true
		resp.State, resp.Epoch, resp.Assignor = g.State(), g.Epoch, g.Assignor
		for _, m := range g.Members() {
			md := &v1.GroupMemberDescription{MemberId: m.ID, InstanceId: m.InstanceID, ClientId: m.ClientID,
				MemberEpoch: m.Epoch, Topics: m.Topics, TopicRegex: m.Regex}
			for _, a := range g.Target(m.ID) {
				k := tp{a.Topic, a.Partition}
				if _, ok := committed[k]; !ok {
					parts = append(parts, k)
					committed[k] = -1
				}
				owner[k] = m.ID
				if n := len(md.Assignment); n > 0 && md.Assignment[n-1].Topic == a.Topic {
					md.Assignment[n-1].Partitions = append(md.Assignment[n-1].Partitions, a.Partition)
				} else {
					md.Assignment = append(md.Assignment, &v1.TopicPartitions{Topic: a.Topic, Partitions: []int32{a.Partition}})
				}
			}
			resp.Members = append(resp.Members, md)
		}
		g.CommittedAll(func(t string, p int32, v consumer.OffsetValue) {
			k := tp{t, p}
			if _, ok := committed[k]; !ok {
				parts = append(parts, k)
			}
			committed[k] = v.Offset
		})
	})
	if !found {
		return nil, apierr.ToStatus(apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN_GROUP, "group %s does not exist", req.Group))
	}
	slices.SortFunc(parts, func(a, c tp) int { return cmp.Or(strings.Compare(a.topic, c.topic), cmp.Compare(a.p, c.p)) })
	for _, k := range parts {
		end, start := b.partitionBounds(ctx, k.topic, k.p)
		c := committed[k]
		lag := int64(0)
		switch {
		case end < 0:
			lag = 0 // unknown: the partition's leader did not answer
		case c >= 0:
			lag = max(end-c, 0)
		default:
			lag = max(end-start, 0)
		}
		resp.Partitions = append(resp.Partitions, &v1.GroupPartitionLag{
			Topic: k.topic, Partition: k.p, Committed: c, LogEnd: end, Lag: lag, MemberId: owner[k],
		})
		resp.TotalLag += lag
	}
	return resp, nil
}

// partitionBounds returns a partition's high watermark and log start, from
// the local replica if it leads, else from the leader (-1, -1 if unknown).
func (b *Broker) partitionBounds(ctx context.Context, topic string, p int32) (end, start int64) {
	if part, err := b.leaderFor(topic, p); err == nil {
		return part.HighWatermark(), part.LogStartOffset()
	}
	t, ok := b.meta.Topic(topic)
	if !ok || int(p) >= len(t.Assignments) {
		return -1, -1
	}
	peer, err := b.peerPublic(t.Assignments[p].Leader)
	if err != nil {
		return -1, -1
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := peer.ListOffsets(ctx, &v1.ListOffsetsRequest{Partitions: []*v1.ListOffsetsPartition{
		{Topic: topic, Partition: p, Spec: v1.OffsetSpec_OFFSET_SPEC_LATEST},
		{Topic: topic, Partition: p, Spec: v1.OffsetSpec_OFFSET_SPEC_EARLIEST},
	}})
	if err != nil || len(resp.Partitions) != 2 || resp.Partitions[0].Error != nil || resp.Partitions[1].Error != nil {
		return -1, -1
	}
	return resp.Partitions[0].Offset, resp.Partitions[1].Offset
}

// DeleteGroup deletes an empty group and its committed offsets.
func (b *Broker) DeleteGroup(ctx context.Context, req *v1.DeleteGroupRequest) (*v1.DeleteGroupResponse, error) {
	h, err := b.home(ctx, req.Group)
	if err != nil {
		return nil, apierr.ToStatus(err)
	}
	if err := h.Delete(ctx, b.now(), req.Group); err != nil {
		return nil, apierr.ToStatus(b.groupWriteError(err))
	}
	return &v1.DeleteGroupResponse{}, nil
}
