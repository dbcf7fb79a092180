package client

import (
	"context"
	"errors"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
)

// missingTopic explains a topic the metadata of every topic did not list.
// With ACLs enforced, brokers leave out the topics the principal may not
// describe (as Kafka's), so "does not exist" may be wrong: a Metadata
// request naming the topic answers AUTHORIZATION_FAILED for it then, and
// that error, which names the ACL to add, is returned instead.
func (m *metaCache) missingTopic(ctx context.Context, name string) error {
	notFound := apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN_TOPIC, "topic %q does not exist", name)
	var denied error
	err := m.c.call(ctx, func(ctx context.Context, cl v1.StrataClient) error {
		r, err := cl.Metadata(ctx, &v1.MetadataRequest{Topics: []string{name}})
		if err != nil {
			return err
		}
		for _, t := range r.GetTopics() {
			if e := apierr.FromProto(t.GetError()); t.GetName() == name && errors.Is(e, apierr.ErrAuthorization) {
				denied = e
			}
		}
		return nil
	})
	if err == nil && denied != nil {
		return denied
	}
	return notFound
}
