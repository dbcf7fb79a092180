package broker

import (
	"context"

	v1 "github.com/stratalog/strata/api/v1"
)

// ListTopics lists every topic, sorted by name. It cannot fail.
func (b *Broker) ListTopics(ctx context.Context, req *v1.ListTopicsRequest) (*v1.ListTopicsResponse, error) {
	resp := &v1.ListTopicsResponse{}
	for _, t := range b.meta.Topics() {
		resp.Topics = append(resp.Topics, &v1.TopicSummary{Name: t.Name, Partitions: t.Partitions, ReplicationFactor: t.ReplicationFactor})
	}
	return resp, nil
}
