package broker

import (
	"context"
	"time"

	"go.uber.org/zap"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/cluster"
	"github.com/stratalog/strata/pkg/metadata"
)

// CreateTopic creates a topic, placing each partition's replicas on live
// brokers (leaders spread evenly), and returns once this broker's copy of
// the metadata has it. Each replica's broker then opens the partition's
// Raft group.
//
// Errors: INVALID_TOPIC for a bad name, INVALID_PARTITIONS for a count
// outside 1..10000, INVALID_REPLICATION for a factor above the live
// brokers, INVALID_CONFIG for unknown keys or bad values, TOPIC_EXISTS,
// UNAVAILABLE while the cluster has no metadata leader. With
// validate_only, nothing is created and the would-be topic is described.
func (b *Broker) CreateTopic(ctx context.Context, req *v1.CreateTopicRequest) (*v1.CreateTopicResponse, error) {
	t, err := b.createTopic(ctx, req.Name, req.Partitions, req.ReplicationFactor, req.Configs, req.ValidateOnly)
	if err != nil {
		return nil, apierr.ToStatus(err)
	}
	return &v1.CreateTopicResponse{Topic: b.describe(ctx, t)}, nil
}

// defaultReplication is the replication factor when a request says 0: 3,
// or every live broker in a smaller cluster.
const defaultReplication = 3

func (b *Broker) createTopic(ctx context.Context, name string, partitions, rf int32, configs map[string]string, validateOnly bool) (metadata.Topic, error) {
	if err := metadata.ValidateTopicName(name); err != nil {
		return metadata.Topic{}, err
	}
	return b.createAnyTopic(ctx, name, partitions, rf, configs, validateOnly)
}

// createAnyTopic creates a topic whose name was checked, or an internal
// one ("__" names are refused to users).
func (b *Broker) createAnyTopic(ctx context.Context, name string, partitions, rf int32, configs map[string]string, validateOnly bool) (metadata.Topic, error) {
	if err := metadata.ValidatePartitions(partitions); err != nil {
		return metadata.Topic{}, err
	}
	if _, err := metadata.ParseTopicConfig(configs, b.cfg.TopicDefaults); err != nil {
		return metadata.Topic{}, err
	}
	live := b.liveBrokers()
	if len(live) == 0 {
		return metadata.Topic{}, apierr.New(v1.ErrorCode_ERROR_CODE_UNAVAILABLE, "the cluster is still forming: no broker is registered yet; retry in a moment")
	}
	if rf == 0 {
		rf = min(defaultReplication, int32(max(len(live), 1)))
	}
	placement, err := metadata.Place(live, b.replicaLoad(), partitions, rf)
	if err != nil {
		return metadata.Topic{}, err
	}
	t := metadata.Topic{Name: name, ID: metadata.NewID(), Partitions: partitions, ReplicationFactor: rf, Config: configs}
	for _, rs := range placement {
		t.Assignments = append(t.Assignments, metadata.Assignment{Replicas: rs, Initial: rs})
	}
	if _, ok := b.meta.Topic(name); ok {
		return t, apierr.New(v1.ErrorCode_ERROR_CODE_TOPIC_EXISTS, "topic %q already exists", name)
	}
	if validateOnly {
		return t, nil
	}
	b.adminMu.Lock()
	defer b.adminMu.Unlock()
	if err := b.applyMeta(ctx, metadata.CreateTopic{Topic: t}); err != nil {
		return t, err
	}
	if err := b.waitMeta(ctx, func() bool { got, ok := b.meta.Topic(name); return ok && got.ID == t.ID }); err != nil {
		return t, err
	}
	// Answer once every partition has elected a leader, so that the
	// creator can produce at once; a slow election is not a failure (the
	// topic exists, and clients retry NOT_LEADER), so the wait is bounded.
	wctx, cancel := context.WithTimeout(ctx, leaderWait)
	defer cancel()
	if err := b.waitMeta(wctx, func() bool { return allLed(b.meta, name, t.ID) }); err != nil {
		b.log.Warn("topic created, but not every partition has a leader yet", zap.String("topic", name), zap.Error(err))
	}
	b.log.Info("topic created", zap.String("topic", name), zap.Int32("partitions", partitions), zap.Int32("replication", rf))
	return t, nil
}

// leaderWait bounds how long CreateTopic waits for partition leaders:
// well under the client's attempt timeout (15s), which would otherwise
// retry a creation that worked and report "already exists".
const leaderWait = 10 * time.Second

func allLed(meta *metadata.RaftStore, name, id string) bool {
	t, ok := meta.Topic(name)
	if !ok || t.ID != id {
		return false
	}
	for _, a := range t.Assignments {
		if a.Leader == 0 {
			return false
		}
	}
	return true
}

// liveBrokers are the registered brokers gossip sees alive.
func (b *Broker) liveBrokers() []metadata.NodeID {
	alive := map[metadata.NodeID]bool{}
	for _, m := range b.members.Members() {
		if m.State == cluster.Alive {
			alive[uint32(m.NodeID)] = true
		}
	}
	var out []metadata.NodeID
	for _, br := range b.meta.Brokers() {
		if alive[br.ID] {
			out = append(out, br.ID)
		}
	}
	return out
}

// replicaLoad counts the partition replicas each broker holds.
func (b *Broker) replicaLoad() map[metadata.NodeID]int {
	load := map[metadata.NodeID]int{}
	for _, t := range b.meta.Topics() {
		for _, a := range t.Assignments {
			for _, r := range a.Replicas {
				load[r]++
			}
		}
	}
	return load
}

// waitMeta waits until this broker's copy of the metadata satisfies cond:
// a change applied on the quorum's leader reaches the others a moment
// later, and a client that reads after writing must see its write.
func (b *Broker) waitMeta(ctx context.Context, cond func() bool) error {
	for {
		ch := b.meta.Changed()
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return apierr.New(v1.ErrorCode_ERROR_CODE_UNAVAILABLE, "the change was made but has not reached this broker yet: %v", ctx.Err())
		}
	}
}
