package client

import (
	"context"
	"crypto/rand"
	"fmt"

	v1 "github.com/stratalog/strata/api/v1"
)

// DefaultScramIterations is the PBKDF2 iteration count UpsertUser uses when
// given 0: Kafka's default and minimum.
const DefaultScramIterations = 4096

// UpsertUser creates a SASL/SCRAM user, or sets its password for one
// mechanism (empty: ScramSHA256). The salted keys are computed here, with a
// fresh random salt; the password is never sent. iterations 0 means
// DefaultScramIterations; brokers accept 4096 to 16384.
func (a *Admin) UpsertUser(ctx context.Context, name, mechanism, password string, iterations int) error {
	if mechanism == "" {
		mechanism = ScramSHA256
	}
	if iterations == 0 {
		iterations = DefaultScramIterations
	}
	req, err := ScramCredential(name, mechanism, password, iterations)
	if err != nil {
		return err
	}
	return a.c.call(ctx, func(ctx context.Context, cl v1.StrataClient) error {
		_, err := cl.UpsertUser(ctx, req)
		return err
	})
}

// ScramCredential computes what a broker stores for a user (RFC 5802's
// salt, iterations, StoredKey and ServerKey) with a fresh 32-byte salt.
func ScramCredential(name, mechanism, password string, iterations int) (*v1.UpsertUserRequest, error) {
	hash, ok := scramHash(mechanism)
	if !ok {
		return nil, fmt.Errorf("client: unknown SASL mechanism %q: use %s or %s", mechanism, ScramSHA256, ScramSHA512)
	}
	sc, err := hash.NewClient(name, password, "")
	if err != nil {
		return nil, fmt.Errorf("client: user %q: %w", name, err)
	}
	salt := make([]byte, 32)
	_, _ = rand.Read(salt)
	cred, err := sc.GetStoredCredentialsWithError(scramKeyFactors(salt, iterations))
	if err != nil {
		return nil, fmt.Errorf("client: user %q: %w", name, err)
	}
	return &v1.UpsertUserRequest{Name: name, Mechanism: mechanism, Salt: salt, Iterations: int32(iterations),
		StoredKey: cred.StoredKey, ServerKey: cred.ServerKey}, nil
}

// DeleteUser deletes a user (every mechanism).
func (a *Admin) DeleteUser(ctx context.Context, name string) error {
	return a.c.call(ctx, func(ctx context.Context, cl v1.StrataClient) error {
		_, err := cl.DeleteUser(ctx, &v1.DeleteUserRequest{Name: name})
		return err
	})
}

// ListUsers lists the users and their mechanisms (never their keys).
func (a *Admin) ListUsers(ctx context.Context) ([]UserSummary, error) {
	var resp *v1.ListUsersResponse
	err := a.c.call(ctx, func(ctx context.Context, cl v1.StrataClient) (err error) {
		resp, err = cl.ListUsers(ctx, &v1.ListUsersRequest{})
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]UserSummary, 0, len(resp.GetUsers()))
	for _, u := range resp.GetUsers() {
		out = append(out, userFromProto(u))
	}
	return out, nil
}

// CreateACLs adds ACL bindings.
func (a *Admin) CreateACLs(ctx context.Context, acls ...ACLBinding) error {
	req := &v1.CreateACLsRequest{}
	for _, b := range acls {
		req.Acls = append(req.Acls, b.proto())
	}
	return a.c.call(ctx, func(ctx context.Context, cl v1.StrataClient) error {
		_, err := cl.CreateACLs(ctx, req)
		return err
	})
}

// ListACLs lists the bindings filter matches (an empty field matches any
// value; ACLBinding{} matches every binding).
func (a *Admin) ListACLs(ctx context.Context, filter ACLBinding) ([]ACLBinding, error) {
	var resp *v1.ListACLsResponse
	err := a.c.call(ctx, func(ctx context.Context, cl v1.StrataClient) (err error) {
		resp, err = cl.ListACLs(ctx, &v1.ListACLsRequest{Filter: filter.proto()})
		return err
	})
	if err != nil {
		return nil, err
	}
	return aclsFromProto(resp.GetAcls()), nil
}

// DeleteACLs deletes the bindings filter matches and returns them. A
// filter with no field set is refused.
func (a *Admin) DeleteACLs(ctx context.Context, filter ACLBinding) ([]ACLBinding, error) {
	var resp *v1.DeleteACLsResponse
	err := a.c.call(ctx, func(ctx context.Context, cl v1.StrataClient) (err error) {
		resp, err = cl.DeleteACLs(ctx, &v1.DeleteACLsRequest{Filter: filter.proto()})
		return err
	})
	if err != nil {
		return nil, err
	}
	return aclsFromProto(resp.GetDeleted()), nil
}
