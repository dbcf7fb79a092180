package broker

import (
	"context"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/metadata"
)

// DescribeTopic reports each partition's leader, replicas, in-sync replicas
// and offsets (asking the replicas' brokers, up to 2 s), how far each
// replica not in sync is behind (and its log copy's progress, during a
// snapshot install), and every config key with its effective value.
//
// Errors: UNKNOWN_TOPIC.
func (b *Broker) DescribeTopic(ctx context.Context, req *v1.DescribeTopicRequest) (*v1.DescribeTopicResponse, error) {
	t, ok := b.meta.Topic(req.Name)
	if !ok {
		return nil, apierr.ToStatus(apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN_TOPIC, "topic %q does not exist", req.Name))
	}
	return &v1.DescribeTopicResponse{Topic: b.describe(ctx, t)}, nil
}

func (b *Broker) describe(ctx context.Context, t metadata.Topic) *v1.TopicDescription {
	d := &v1.TopicDescription{Name: t.Name, ReplicationFactor: t.ReplicationFactor}
	states := b.replicaStates(ctx, t)
	for i, a := range t.Assignments {
		p := int32(i)
		v := viewPartition(a, states[t.GroupName(p)])
		pd := &v1.PartitionDescription{
			Partition:      p,
			Leader:         v.leader,
			Replicas:       a.Replicas,
			InSyncReplicas: v.isr,
			HighWatermark:  v.hwm,
			LogStartOffset: v.start,
			LogEndOffset:   v.end,
			Lagging:        v.lagging,
		}
		if local, ok := b.replicas.get(t.GroupName(p)); ok {
			pd.SizeBytes = local.Size()
			pd.Segments = int32(len(local.Segments()))
		}
		d.Partitions = append(d.Partitions, pd)
	}
	eff := metadata.Effective(t.Config, b.cfg.TopicDefaults)
	for _, k := range metadata.ConfigKeys() {
		_, own := t.Config[k]
		d.Configs = append(d.Configs, &v1.TopicConfigEntry{Key: k, Value: eff[k], IsDefault: !own})
	}
	return d
}
