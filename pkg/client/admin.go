package client

import (
	"context"
	"fmt"
	"sync"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
)

// Admin manages topics, groups, partitions, users and ACLs, and reads
// cluster metadata. Its methods take and return this package's own plain
// structs (TopicDetail, GroupDetail, ClusterMetadata ...; see
// admin_types.go), copied from the API's messages, so that a caller needs
// no import of api/v1. Errors are *apierr.Error (test them with errors.Is
// against the apierr sentinels), a context error, or ErrClosed.
type Admin struct{ c *Client }

// Admin returns the admin API of the client.
func (c *Client) Admin() *Admin { return &Admin{c: c} }

// CreateTopic creates a topic. replicas 0 means the broker default;
// configs are topic config keys (see DescribeTopic for the list).
func (a *Admin) CreateTopic(ctx context.Context, name string, partitions, replicas int32, configs map[string]string) (TopicDetail, error) {
	var resp *v1.CreateTopicResponse
	err := a.c.call(ctx, func(ctx context.Context, cl v1.StrataClient) (err error) {
		resp, err = cl.CreateTopic(ctx, &v1.CreateTopicRequest{Name: name, Partitions: partitions, ReplicationFactor: replicas, Configs: configs})
		return err
	})
	a.c.meta.invalidate()
	if err != nil {
		return TopicDetail{}, err
	}
	return topicDetailFromProto(resp.GetTopic()), nil
}

// DeleteTopic deletes a topic and its data.
func (a *Admin) DeleteTopic(ctx context.Context, name string) error {
	err := a.c.call(ctx, func(ctx context.Context, cl v1.StrataClient) error {
		_, err := cl.DeleteTopic(ctx, &v1.DeleteTopicRequest{Name: name})
		return err
	})
	a.c.meta.invalidate()
	return err
}

// ListTopics lists every topic.
func (a *Admin) ListTopics(ctx context.Context) ([]TopicSummary, error) {
	var resp *v1.ListTopicsResponse
	err := a.c.call(ctx, func(ctx context.Context, cl v1.StrataClient) (err error) {
		resp, err = cl.ListTopics(ctx, &v1.ListTopicsRequest{})
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]TopicSummary, 0, len(resp.GetTopics()))
	for _, t := range resp.GetTopics() {
		out = append(out, topicSummaryFromProto(t))
	}
	return out, nil
}

// DescribeTopic returns a topic's partitions (leader, replicas, offsets,
// size) and its full config, defaults marked.
func (a *Admin) DescribeTopic(ctx context.Context, name string) (TopicDetail, error) {
	var resp *v1.DescribeTopicResponse
	err := a.c.call(ctx, func(ctx context.Context, cl v1.StrataClient) (err error) {
		resp, err = cl.DescribeTopic(ctx, &v1.DescribeTopicRequest{Name: name})
		return err
	})
	if err != nil {
		return TopicDetail{}, err
	}
	return topicDetailFromProto(resp.GetTopic()), nil
}

// AlterTopicConfig sets the keys in set and resets the keys in del to the
// broker default, in one step, and returns the topic as it now is.
func (a *Admin) AlterTopicConfig(ctx context.Context, name string, set map[string]string, del []string) (TopicDetail, error) {
	var resp *v1.AlterTopicConfigResponse
	err := a.c.call(ctx, func(ctx context.Context, cl v1.StrataClient) (err error) {
		resp, err = cl.AlterTopicConfig(ctx, &v1.AlterTopicConfigRequest{Name: name, Set: set, Delete: del})
		return err
	})
	if err != nil {
		return TopicDetail{}, err
	}
	return topicDetailFromProto(resp.GetTopic()), nil
}

// ListOffsets looks up one partition's offset: OffsetSpecLatest (the
// high watermark), OffsetSpecEarliest (the log start) or
// OffsetSpecTimestamp (the first record at or after ts; Found false and
// the high watermark when there is none). ts is used only with
// OffsetSpecTimestamp.
func (a *Admin) ListOffsets(ctx context.Context, topic string, partition int32, spec OffsetSpec, ts time.Time) (ListedOffset, error) {
	var tsMs int64
	if spec == OffsetSpecTimestamp {
		tsMs = ts.UnixMilli()
	}
	res, err := a.c.listOffsets(ctx, topic, []int32{partition}, spec.proto(), tsMs)
	if err != nil {
		return ListedOffset{}, err
	}
	return listedOffsetFromProto(res[partition]), nil
}

// Metadata returns the cluster's brokers, controller and every topic's
// partition leaders, fresh from a broker (it also refreshes the client's
// routing cache).
func (a *Admin) Metadata(ctx context.Context) (ClusterMetadata, error) {
	s, err := a.c.meta.refresh(ctx, time.Now())
	if err != nil {
		return ClusterMetadata{}, err
	}
	return clusterMetadataFromProto(s.resp), nil
}

// listOffsets asks each partition's leader, with retries; a per-partition
// error fails the whole call.
func (c *Client) listOffsets(ctx context.Context, topic string, parts []int32, spec v1.OffsetSpec, ts int64) (map[int32]*v1.ListOffsetsPartitionResult, error) {
	out := make(map[int32]*v1.ListOffsetsPartitionResult, len(parts))
	var mu sync.Mutex
	err := c.retry(ctx, time.Now().Add(c.cfg.retryTimeout), func(ctx context.Context, _ int) error {
		var todo []int32
		for _, p := range parts {
			if _, done := out[p]; !done {
				todo = append(todo, p)
			}
		}
		err := c.eachLeader(ctx, topic, todo, func(ctx context.Context, cl v1.StrataClient, via string, parts []int32) error {
			req := &v1.ListOffsetsRequest{}
			for _, p := range parts {
				req.Partitions = append(req.Partitions, &v1.ListOffsetsPartition{Topic: topic, Partition: p, Spec: spec, TimestampMs: ts})
			}
			resp, err := cl.ListOffsets(ctx, req)
			if err != nil {
				return c.leaderErr(topic, parts, via, apierr.FromStatus(err))
			}
			var worst error
			for _, r := range resp.GetPartitions() {
				if err := apierr.FromProto(r.GetError()); err != nil {
					err = c.leaderErr(topic, []int32{r.GetPartition()}, via, err)
					worst = worse(worst, fmt.Errorf("list offsets %s/%d: %w", topic, r.GetPartition(), err))
					continue
				}
				mu.Lock()
				out[r.GetPartition()] = r
				mu.Unlock()
			}
			return worst
		})
		if err != nil {
			return err // a retriable one makes retry go again
		}
		for _, p := range parts {
			if _, ok := out[p]; !ok {
				return apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN, "list offsets: no result for %s/%d", topic, p)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
