package broker

import (
	"context"

	"go.uber.org/zap"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/metadata"
)

// DeleteTopic removes a topic; every replica's broker then closes the
// partitions and deletes their files.
//
// Errors: UNKNOWN_TOPIC; POLICY_VIOLATION for an immutable topic, whose
// records no operation may delete, or an internal topic.
func (b *Broker) DeleteTopic(ctx context.Context, req *v1.DeleteTopicRequest) (*v1.DeleteTopicResponse, error) {
	if err := refuseInternal("delete", req.Name); err != nil {
		return nil, apierr.ToStatus(err)
	}
	b.adminMu.Lock()
	defer b.adminMu.Unlock()
	t, ok := b.meta.Topic(req.Name)
	if !ok {
		return nil, apierr.ToStatus(apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN_TOPIC, "topic %q does not exist", req.Name))
	}
	if cfg, err := metadata.ParseTopicConfig(t.Config, b.cfg.TopicDefaults); err == nil && cfg.Immutable {
		return nil, apierr.ToStatus(apierr.New(v1.ErrorCode_ERROR_CODE_POLICY_VIOLATION,
			"topic %q is immutable: its records can never be deleted, so the topic cannot be deleted either", req.Name))
	}
	if err := b.applyMeta(ctx, metadata.DeleteTopic{Name: req.Name}); err != nil {
		return nil, apierr.ToStatus(err)
	}
	if err := b.waitMeta(ctx, func() bool { got, ok := b.meta.Topic(req.Name); return !ok || got.ID != t.ID }); err != nil {
		return nil, apierr.ToStatus(err)
	}
	b.log.Info("topic deleted", zap.String("topic", req.Name))
	return &v1.DeleteTopicResponse{}, nil
}
