package broker

import (
	"context"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/acl"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/metadata"
)

// CreateACLs adds ACL bindings (pkg/acl); one already stored is not added
// twice. Needs alter on the cluster.
//
// Errors: INVALID_REQUEST naming the first bad field (refused by the
// metadata quorum at apply).
func (b *Broker) CreateACLs(ctx context.Context, req *v1.CreateACLsRequest) (*v1.CreateACLsResponse, error) {
	c := metadata.CreateACLs{}
	for _, a := range req.Acls {
		c.Bindings = append(c.Bindings, bindingFromProto(a))
	}
	if err := b.applyMeta(ctx, c); err != nil {
		return nil, apierr.ToStatus(err)
	}
	return &v1.CreateACLsResponse{}, nil
}

// ListACLs lists the bindings the filter matches (an empty field matches
// any value), in creation order. Needs describe on the cluster.
func (b *Broker) ListACLs(ctx context.Context, req *v1.ListACLsRequest) (*v1.ListACLsResponse, error) {
	f := filterFromProto(req.Filter)
	resp := &v1.ListACLsResponse{}
	for _, a := range b.meta.ACLs() {
		if f.Matches(a) {
			resp.Acls = append(resp.Acls, bindingToProto(a))
		}
	}
	return resp, nil
}

// DeleteACLs deletes the bindings the filter matches and answers which
// (those matching when the call started: a binding created meanwhile and
// deleted too is not listed). Needs alter on the cluster.
//
// Errors: INVALID_REQUEST for an empty filter (delete every binding by
// naming, e.g., the permission twice: allow, then deny).
func (b *Broker) DeleteACLs(ctx context.Context, req *v1.DeleteACLsRequest) (*v1.DeleteACLsResponse, error) {
	f := filterFromProto(req.Filter)
	if f == (acl.Filter{}) {
		return nil, apierr.ToStatus(apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_REQUEST,
			"an ACL filter with no field set would delete every ACL: name at least a principal, resource, operation or permission"))
	}
	resp := &v1.DeleteACLsResponse{}
	for _, a := range b.meta.ACLs() {
		if f.Matches(a) {
			resp.Deleted = append(resp.Deleted, bindingToProto(a))
		}
	}
	if len(resp.Deleted) == 0 {
		return resp, nil
	}
	if err := b.applyMeta(ctx, metadata.DeleteACLs{Filters: []acl.Filter{f}}); err != nil {
		return nil, apierr.ToStatus(err)
	}
	return resp, nil
}

func bindingFromProto(a *v1.AclBinding) acl.Binding {
	return acl.Binding{Principal: a.GetPrincipal(), Host: a.GetHost(), Resource: acl.ResourceType(a.GetResourceType()), Name: a.GetName(),
		Pattern: acl.PatternType(a.GetPatternType()), Operation: acl.Operation(a.GetOperation()), Permission: acl.Permission(a.GetPermission())}
}

func filterFromProto(a *v1.AclBinding) acl.Filter {
	return acl.Filter(bindingFromProto(a))
}

func bindingToProto(a acl.Binding) *v1.AclBinding {
	return &v1.AclBinding{Principal: a.Principal, Host: a.Host, ResourceType: string(a.Resource), Name: a.Name,
		PatternType: string(a.Pattern), Operation: string(a.Operation), Permission: string(a.Permission)}
}
