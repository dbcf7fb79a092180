package broker

import (
	"context"
	"maps"

	"go.uber.org/zap"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/metadata"
)

// AlterTopicConfig sets and resets a topic's config keys at runtime. The
// whole change is validated first; on any error nothing changes.
//
// Errors: UNKNOWN_TOPIC; INVALID_CONFIG for unknown keys, bad values or a
// bad combination; POLICY_VIOLATION for weakening an immutable topic or
// for an internal topic.
func (b *Broker) AlterTopicConfig(ctx context.Context, req *v1.AlterTopicConfigRequest) (*v1.AlterTopicConfigResponse, error) {
	t, err := b.alterTopicConfig(ctx, req)
	if err != nil {
		return nil, apierr.ToStatus(err)
	}
	return &v1.AlterTopicConfigResponse{Topic: b.describe(ctx, t)}, nil
}

func (b *Broker) alterTopicConfig(ctx context.Context, req *v1.AlterTopicConfigRequest) (metadata.Topic, error) {
	if err := refuseInternal("alter the config of", req.Name); err != nil {
		return metadata.Topic{}, err
	}
	b.adminMu.Lock()
	defer b.adminMu.Unlock()
	t, ok := b.meta.Topic(req.Name)
	if !ok {
		return t, apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN_TOPIC, "topic %q does not exist", req.Name)
	}
	for _, k := range req.Delete {
		if err := metadata.ValidateRaw(map[string]string{k: metadata.BuiltinDefaults()[k]}); err != nil {
			return t, err
		}
	}
	next := maps.Clone(t.Config)
	if next == nil {
		next = map[string]string{}
	}
	for _, k := range req.Delete {
		delete(next, k)
	}
	maps.Copy(next, req.Set)
	if err := metadata.CheckAlter(t.Config, next); err != nil {
		return t, err
	}
	if _, err := metadata.ParseTopicConfig(next, b.cfg.TopicDefaults); err != nil {
		return t, err
	}
	if req.ValidateOnly {
		t.Config = next
		return t, nil
	}
	if err := b.applyMeta(ctx, metadata.AlterTopicConfig{Name: req.Name, Set: req.Set, Delete: req.Delete}); err != nil {
		return t, err
	}
	// Every replica's broker applies the new config as its metadata copy
	// changes; this one answers once its own copy has it.
	if err := b.waitMeta(ctx, func() bool { got, ok := b.meta.Topic(req.Name); return ok && maps.Equal(got.Config, next) }); err != nil {
		return t, err
	}
	t, _ = b.meta.Topic(req.Name)
	b.log.Info("topic config changed", zap.String("topic", req.Name), zap.Any("set", req.Set), zap.Strings("delete", req.Delete))
	return t, nil
}
