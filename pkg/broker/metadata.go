package broker

import (
	"context"

	"go.uber.org/zap"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/cluster"
	"github.com/stratalog/strata/pkg/metadata"
)

// Version is the broker's version, reported in cluster metadata.
var Version = "dev"

// brokerState is a registered broker's state as clients are told it:
// gossip's (alive, suspect, dead, left), except that a broker whose raft
// port refused this broker's connection since it was last heard is dead
// at once (the raft transport knows a killed process within milliseconds,
// gossip only after its probes time out: several seconds in which
// `cluster info` said alive while `topic describe` had it out of sync).
func (b *Broker) brokerState(id uint32, raftAddr string, m cluster.Member, known bool) string {
	if !known {
		return string(cluster.Dead)
	}
	if m.State == cluster.Alive && id != b.cfg.NodeID && b.mux != nil && b.mux.Gone(raftAddress(raftAddr)) {
		return string(cluster.Dead)
	}
	return string(m.State)
}

// Metadata describes the cluster (its brokers with their gossip state, and
// the controller: the metadata quorum's leader) and the requested topics
// (all when none are named): each partition's replicas and last known
// leader, so clients route produce and fetch, and the topic's effective
// max.message.bytes, so producers size batches under it. An unknown topic
// is reported in its TopicMetadata, not as a call error. It answers from this broker's
// copy of the metadata, which may trail the leader by a moment, and for
// the partitions it holds a replica of, from their raft groups, which know
// a new leader as soon as it is elected; a client sent to a broker that no
// longer leads gets NOT_LEADER and asks again. Brokers' addresses are
// those of the listener the request came in on (MetadataResponse.listener).
func (b *Broker) Metadata(ctx context.Context, req *v1.MetadataRequest) (*v1.MetadataResponse, error) {
	controller, _ := b.meta.Leader()
	listener := b.clientListener(ctx)
	resp := &v1.MetadataResponse{ClusterId: b.meta.ClusterID(), ControllerId: controller, Listener: listener}
	states := map[uint32]cluster.Member{}
	for _, m := range b.members.Members() {
		states[uint32(m.NodeID)] = m
	}
	for _, br := range b.meta.Brokers() {
		m, ok := states[br.ID]
		state := b.brokerState(br.ID, br.RaftAddr, m, ok)
		// Each broker's address on the listener the client came in on
		// (Kafka's rule); a broker without one is left out and named.
		addr, ok := br.ListenerAddr(listener)
		if !ok {
			resp.BrokersWithoutListener = append(resp.BrokersWithoutListener, br.ID)
			b.log.Debug("metadata: broker has no listener of this name", zap.Uint32("broker", br.ID), zap.String("listener", listener))
			continue
		}
		resp.Brokers = append(resp.Brokers, &v1.BrokerInfo{NodeId: br.ID, ApiAddr: addr, HttpAddr: br.HTTPAddr, State: state, Version: m.Version})
	}
	names := req.Topics
	if len(names) == 0 {
		for _, t := range b.meta.Topics() {
			names = append(names, t.Name)
		}
	}
	for _, name := range names {
		tm := &v1.TopicMetadata{Name: name}
		resp.Topics = append(resp.Topics, tm)
		t, ok := b.meta.Topic(name)
		if !ok {
			tm.Error = apierr.ToProto(apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN_TOPIC, "topic %q does not exist", name))
			continue
		}
		// The producer sizes its batches under the topic's limit (a
		// Metadata field rather than a DescribeTopic call: the producer
		// loads metadata anyway, and a changed limit arrives with it).
		if cfg, err := metadata.ParseTopicConfig(t.Config, b.cfg.TopicDefaults); err == nil {
			tm.MaxMessageBytes = int32(cfg.MaxMessageBytes)
		}
		for i, a := range t.Assignments {
			leader := a.Leader
			if p, ok := b.replicas.get(t.GroupName(int32(i))); ok {
				// A replica's raft group knows a new leader as soon as
				// it is elected, before the metadata publishes it.
				if p.IsLeader() {
					leader = b.cfg.NodeID
				} else if l := p.Leader(); l != 0 {
					leader = l
				}
			}
			tm.Partitions = append(tm.Partitions, &v1.PartitionMetadata{Partition: int32(i), Leader: leader, Replicas: a.Replicas})
		}
	}
	return resp, nil
}
