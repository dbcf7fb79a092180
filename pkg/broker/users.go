package broker

import (
	"context"
	"slices"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/metadata"
)

// UpsertUser creates a SCRAM user or replaces one mechanism's credential.
// The request carries the salted keys the client computed, never the
// password (metadata/security.go). Needs alter on the cluster.
//
// Errors: INVALID_REQUEST for a bad name, mechanism, salt, iteration count
// or key length (refused by the metadata quorum at apply).
func (b *Broker) UpsertUser(ctx context.Context, req *v1.UpsertUserRequest) (*v1.UpsertUserResponse, error) {
	err := b.applyMeta(ctx, metadata.UpsertScramCredential{
		User: req.Name, Mechanism: req.Mechanism, Salt: req.Salt, Iterations: int(req.Iterations),
		StoredKey: req.StoredKey, ServerKey: req.ServerKey,
	})
	if err != nil {
		return nil, apierr.ToStatus(err)
	}
	return &v1.UpsertUserResponse{}, nil
}

// DeleteUser deletes a user and all its credentials; its sessions end at
// their next request. Needs alter on the cluster.
//
// Errors: UNKNOWN_USER.
func (b *Broker) DeleteUser(ctx context.Context, req *v1.DeleteUserRequest) (*v1.DeleteUserResponse, error) {
	if err := b.applyMeta(ctx, metadata.DeleteUser{User: req.Name}); err != nil {
		return nil, apierr.ToStatus(err)
	}
	return &v1.DeleteUserResponse{}, nil
}

// ListUsers lists the users, their mechanisms and iteration counts; never
// their keys. Needs describe on the cluster. It cannot fail.
func (b *Broker) ListUsers(ctx context.Context, _ *v1.ListUsersRequest) (*v1.ListUsersResponse, error) {
	resp := &v1.ListUsersResponse{}
	for _, u := range b.meta.Users() {
		s := &v1.UserSummary{Name: u.Name}
		for m, c := range u.Credentials {
			s.Mechanisms = append(s.Mechanisms, &v1.ScramMechanism{Mechanism: m, Iterations: int32(c.Iterations)})
		}
		slices.SortFunc(s.Mechanisms, func(a, b *v1.ScramMechanism) int {
			if a.Mechanism < b.Mechanism {
				return -1
			}
			return 1
		})
		resp.Users = append(resp.Users, s)
	}
	return resp, nil
}
