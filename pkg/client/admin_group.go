package client

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
)

// Consumer group administration. Every call but ListGroups goes to the
// group's coordinator (see coordCache) and is retried within the client's
// RetryTimeout while the coordinator moves.

// ListGroups lists every consumer group of the cluster. Each broker lists
// only the groups it coordinates, so every broker in the metadata is
// asked, concurrently, and the answers merged (sorted by name; a group
// whose coordinator moved between two answers is listed once). Brokers
// the cluster knows are dead or gone are skipped: their groups have
// moved to others. It fails if another broker cannot answer within the
// RetryTimeout: a partial list would look complete.
func (a *Admin) ListGroups(ctx context.Context) ([]GroupSummary, error) {
	c := a.c
	s, err := c.meta.refresh(ctx, time.Now())
	if err != nil {
		return nil, err
	}
	var (
		mu     sync.Mutex
		groups = make(map[string]*v1.GroupSummary)
		errs   []error
		wg     sync.WaitGroup
	)
	var addrs []string
	for _, b := range s.resp.GetBrokers() {
		if addr, ok := s.brokers[b.GetNodeId()]; ok && b.GetState() != "dead" && b.GetState() != "left" {
			addrs = append(addrs, addr)
		}
	}
	slices.Sort(addrs)
	for _, addr := range addrs {
		wg.Go(func() {
			var resp *v1.ListGroupsResponse
			err := c.retry(ctx, time.Now().Add(c.cfg.retryTimeout), func(ctx context.Context, _ int) error {
				cl, err := c.conn(addr)
				if err != nil {
					return err
				}
				resp, err = cl.ListGroups(ctx, &v1.ListGroupsRequest{})
				return apierr.FromStatus(err)
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("list groups on %s: %w", addr, err))
				return
			}
			for _, g := range resp.GetGroups() {
				groups[g.GetGroup()] = g
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	out := make([]GroupSummary, 0, len(groups))
	for _, name := range slices.Sorted(maps.Keys(groups)) {
		out = append(out, groupSummaryFromProto(groups[name]))
	}
	return out, nil
}

// DescribeGroup returns a group's state, members with their assignments,
// and per partition its committed offset, log end, lag and owner.
// apierr.ErrUnknownGroup if there is no such group.
func (a *Admin) DescribeGroup(ctx context.Context, group string) (GroupDetail, error) {
	var resp *v1.DescribeGroupResponse
	err := a.c.groupCall(ctx, group, func(ctx context.Context, cl v1.StrataClient) (err error) {
		resp, err = cl.DescribeGroup(ctx, &v1.DescribeGroupRequest{Group: group})
		return err
	})
	if err != nil {
		return GroupDetail{}, err
	}
	return groupDetailFromProto(resp), nil
}

// DeleteGroup deletes a group and its committed offsets. It is refused
// with apierr.ErrGroupNotEmpty while the group has members.
func (a *Admin) DeleteGroup(ctx context.Context, group string) error {
	return a.c.groupCall(ctx, group, func(ctx context.Context, cl v1.StrataClient) error {
		_, err := cl.DeleteGroup(ctx, &v1.DeleteGroupRequest{Group: group})
		return err
	})
}

// FetchOffsets returns the group's committed offsets of parts, or of
// every partition it has committed when parts is empty. Offset -1 means
// nothing is committed.
func (a *Admin) FetchOffsets(ctx context.Context, group string, parts ...TopicPartition) ([]CommittedOffset, error) {
	offs, err := a.c.fetchOffsets(ctx, group, parts)
	if err != nil {
		return nil, err
	}
	return committedOffsetsFromProto(offs), nil
}

func (c *Client) fetchOffsets(ctx context.Context, group string, parts []TopicPartition) ([]*v1.CommittedOffset, error) {
	req := &v1.FetchOffsetsRequest{Group: group, Partitions: byTopic(parts)}
	var resp *v1.FetchOffsetsResponse
	err := c.groupCall(ctx, group, func(ctx context.Context, cl v1.StrataClient) (err error) {
		resp, err = cl.FetchOffsets(ctx, req)
		return err
	})
	return resp.GetOffsets(), err
}

// CommitOffsets commits offsets (the next offset to consume, per
// partition) for the group as an administrator: with no member id and
// member epoch -1. The coordinator refuses it with apierr.ErrGroupNotEmpty
// while the group has active members, whose own commits would race it.
// Per-partition errors are joined, each naming its partition.
func (a *Admin) CommitOffsets(ctx context.Context, group string, offsets map[TopicPartition]int64) error {
	failed, err := a.c.commitOffsets(ctx, group, "", -1, offsets)
	if err != nil {
		return err
	}
	var errs []error
	for _, tp := range sortedTPs(failed) {
		errs = append(errs, failed[tp])
	}
	return errors.Join(errs...)
}

// commitOffsets sends one CommitOffsets for the member, with retries. It
// returns the error of each partition that failed (naming it), or an
// error for the whole call.
func (c *Client) commitOffsets(ctx context.Context, group, memberID string, epoch int32, offsets map[TopicPartition]int64) (map[TopicPartition]error, error) {
	req := &v1.CommitOffsetsRequest{Group: group, MemberId: memberID, MemberEpoch: epoch}
	for _, tp := range sortedTPs(offsets) {
		req.Offsets = append(req.Offsets, &v1.OffsetCommit{Topic: tp.Topic, Partition: tp.Partition, Offset: offsets[tp]})
	}
	var resp *v1.CommitOffsetsResponse
	err := c.groupCall(ctx, group, func(ctx context.Context, cl v1.StrataClient) (err error) {
		resp, err = cl.CommitOffsets(ctx, req)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("commit offsets of group %q: %w", group, err)
	}
	failed := make(map[TopicPartition]error)
	for _, r := range resp.GetResults() {
		if err := apierr.FromProto(r.GetError()); err != nil {
			tp := TopicPartition{r.GetTopic(), r.GetPartition()}
			failed[tp] = fmt.Errorf("commit %s at %d for group %q: %w", tp, offsets[tp], group, err)
		}
	}
	return failed, nil
}

// byTopic groups partitions by topic, both sorted.
func byTopic(parts []TopicPartition) []*v1.TopicPartitions {
	m := make(map[string][]int32)
	for _, tp := range parts {
		m[tp.Topic] = append(m[tp.Topic], tp.Partition)
	}
	var out []*v1.TopicPartitions
	for _, t := range slices.Sorted(maps.Keys(m)) {
		ps := m[t]
		slices.Sort(ps)
		out = append(out, &v1.TopicPartitions{Topic: t, Partitions: slices.Compact(ps)})
	}
	return out
}

// fromTopics flattens the wire's per-topic lists.
func fromTopics(tps []*v1.TopicPartitions) []TopicPartition {
	var out []TopicPartition
	for _, t := range tps {
		for _, p := range t.GetPartitions() {
			out = append(out, TopicPartition{t.GetTopic(), p})
		}
	}
	return out
}

func sortedTPs[V any](m map[TopicPartition]V) []TopicPartition {
	return slices.SortedFunc(maps.Keys(m), TopicPartition.compare)
}

// ResolveOffset says which offset o stands for in each of partitions of
// topic, as a consumer starting there would (ListOffsets on the
// partitions' leaders for Earliest, Latest, FromEnd and AtTime; AtOffset
// as given, even outside the stored range). "strata group seek" plans
// with it.
func (a *Admin) ResolveOffset(ctx context.Context, topic string, partitions []int32, o Offset) (map[int32]int64, error) {
	if o.kind == offsetNone {
		return nil, fmt.Errorf("client: ResolveOffset: NoReset() is not a position")
	}
	return a.c.resolveOffset(ctx, topic, partitions, o)
}
