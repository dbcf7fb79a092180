package client

import v1 "github.com/stratalog/strata/api/v1"

// UserSummary is one SASL/SCRAM user of ListUsers: the mechanisms it
// has credentials for, never its keys.
type UserSummary struct {
	Name       string
	Mechanisms []ScramInfo
}

// ScramInfo is one mechanism a user has credentials for.
type ScramInfo struct {
	Mechanism  string // ScramSHA256 or ScramSHA512
	Iterations int
}

// ACLBinding allows or denies a principal an operation on resources. As
// a filter (ListACLs, DeleteACLs) an empty field matches any value.
type ACLBinding struct {
	Principal    string // "User:alice", or "User:*" for every user
	Host         string // "*" or an IP address
	ResourceType string // "topic", "group", "cluster" or "transactional-id"
	Name         string // the resource's name; "*" with PatternType "literal" is every name
	PatternType  string // "literal" or "prefixed"
	// Operation is "read", "write", "create", "delete", "alter",
	// "describe", "describe-configs", "alter-configs", "idempotent-write"
	// or "all".
	Operation  string
	Permission string // "allow" or "deny"
}

func userFromProto(u *v1.UserSummary) UserSummary {
	out := UserSummary{Name: u.GetName()}
	for _, m := range u.GetMechanisms() {
		out.Mechanisms = append(out.Mechanisms, ScramInfo{Mechanism: m.GetMechanism(), Iterations: int(m.GetIterations())})
	}
	return out
}

func aclFromProto(b *v1.AclBinding) ACLBinding {
	return ACLBinding{Principal: b.GetPrincipal(), Host: b.GetHost(), ResourceType: b.GetResourceType(), Name: b.GetName(),
		PatternType: b.GetPatternType(), Operation: b.GetOperation(), Permission: b.GetPermission()}
}

func aclsFromProto(bs []*v1.AclBinding) []ACLBinding {
	out := make([]ACLBinding, 0, len(bs))
	for _, b := range bs {
		out = append(out, aclFromProto(b))
	}
	return out
}

func (b ACLBinding) proto() *v1.AclBinding {
	return &v1.AclBinding{Principal: b.Principal, Host: b.Host, ResourceType: b.ResourceType, Name: b.Name,
		PatternType: b.PatternType, Operation: b.Operation, Permission: b.Permission}
}
