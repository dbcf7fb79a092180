package acl

import (
	"fmt"
	"net"
	"strings"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
)

// ResourceType is what an ACL protects, as Kafka names it.
type ResourceType string

// Resource types. Their spellings are stored in the metadata log: part of
// its format.
const (
	Topic           ResourceType = "topic"
	Group           ResourceType = "group"
	Cluster         ResourceType = "cluster"
	TransactionalID ResourceType = "transactional-id"
)

// ClusterName is the name of the one cluster resource (Kafka's
// "kafka-cluster").
const ClusterName = "strata-cluster"

// Operation is what a principal does to a resource.
type Operation string

// Operations, as Kafka's. All matches every operation in a binding; a
// request never asks for All. Their spellings are part of the log format.
const (
	Read            Operation = "read"
	Write           Operation = "write"
	Create          Operation = "create"
	Delete          Operation = "delete"
	Alter           Operation = "alter"
	Describe        Operation = "describe"
	DescribeConfigs Operation = "describe-configs"
	AlterConfigs    Operation = "alter-configs"
	IdempotentWrite Operation = "idempotent-write"
	All             Operation = "all"
)

// PatternType says how a binding's name matches a resource's name.
type PatternType string

// Pattern types: Literal matches the name exactly ("*" literal matches
// every name); Prefixed matches every name that starts with it.
const (
	Literal  PatternType = "literal"
	Prefixed PatternType = "prefixed"
)

// Permission is allow or deny; a matching deny always wins.
type Permission string

// Permissions.
const (
	Allow Permission = "allow"
	Deny  Permission = "deny"
)

// Wildcards: "*" as a literal name, a host, or "User:*" as a principal.
const (
	Wildcard          = "*"
	WildcardPrincipal = "User:*"
)

// Bounds on a binding's strings; part of the log's meaning (see
// metadata/validate.go).
const (
	MaxNameLen      = 255
	MaxPrincipalLen = 255
)

// Binding is one ACL: Principal may (Allow) or may not (Deny) do
// Operation to the resources of type Resource whose name matches Name
// (by Pattern), from Host. Its JSON is stored in the metadata log.
type Binding struct {
	Principal  string       `json:"principal"`
	Host       string       `json:"host"`
	Resource   ResourceType `json:"resource_type"`
	Name       string       `json:"name"`
	Pattern    PatternType  `json:"pattern_type"`
	Operation  Operation    `json:"operation"`
	Permission Permission   `json:"permission"`
}

func (b Binding) String() string {
	return fmt.Sprintf("%s %s %s on %s %s (%s) from %s", b.Principal, b.Permission, b.Operation, b.Resource, b.Name, b.Pattern, b.Host)
}

var (
	resourceTypes = []ResourceType{Topic, Group, Cluster, TransactionalID}
	operations    = []Operation{Read, Write, Create, Delete, Alter, Describe, DescribeConfigs, AlterConfigs, IdempotentWrite, All}
)

// ResourceTypes lists every resource type.
func ResourceTypes() []ResourceType { return resourceTypes }

// Operations lists every operation, All last.
func Operations() []Operation { return operations }

func invalid(format string, args ...any) error {
	return apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_REQUEST, "acl: "+format, args...)
}

// ParseResourceType accepts a resource type as the CLI spells it.
func ParseResourceType(s string) (ResourceType, error) {
	for _, r := range resourceTypes {
		if strings.EqualFold(s, string(r)) {
			return r, nil
		}
	}
	return "", invalid("unknown resource type %q (topic, group, cluster or transactional-id)", s)
}

// ParseOperation accepts an operation as the CLI spells it.
func ParseOperation(s string) (Operation, error) {
	for _, o := range operations {
		if strings.EqualFold(strings.ReplaceAll(s, "_", "-"), string(o)) {
			return o, nil
		}
	}
	return "", invalid("unknown operation %q (read, write, create, delete, alter, describe, describe-configs, alter-configs, idempotent-write or all)", s)
}

// ValidatePrincipal accepts "Type:name" with a non-empty type and name.
func ValidatePrincipal(p string) error {
	typ, name, ok := strings.Cut(p, ":")
	if !ok || typ == "" || name == "" || len(p) > MaxPrincipalLen {
		return invalid("principal %q is not Type:name (e.g. User:alice), at most %d bytes", p, MaxPrincipalLen)
	}
	return nil
}

// Validate checks a binding as it may be stored: every field set and
// known, the host "*" or an IP address, the cluster's name ClusterName.
func (b Binding) Validate() error {
	if err := ValidatePrincipal(b.Principal); err != nil {
		return err
	}
	if b.Host != Wildcard && net.ParseIP(b.Host) == nil {
		return invalid("host %q is neither * nor an IP address", b.Host)
	}
	if _, err := ParseResourceType(string(b.Resource)); err != nil || string(b.Resource) != strings.ToLower(string(b.Resource)) {
		return invalid("unknown resource type %q", b.Resource)
	}
	if b.Name == "" || len(b.Name) > MaxNameLen {
		return invalid("resource name must have 1 to %d bytes, has %d", MaxNameLen, len(b.Name))
	}
	if b.Resource == Cluster && b.Name != ClusterName {
		return invalid("the cluster resource is named %q, not %q", ClusterName, b.Name)
	}
	switch b.Pattern {
	case Literal:
	case Prefixed:
		if b.Name == Wildcard {
			return invalid(`a prefixed pattern "*" matches only names starting with "*": use a literal "*" for every name`)
		}
	default:
		return invalid("pattern type %q is neither literal nor prefixed", b.Pattern)
	}
	found := false
	for _, o := range operations {
		found = found || o == b.Operation
	}
	if !found {
		return invalid("unknown operation %q", b.Operation)
	}
	if b.Permission != Allow && b.Permission != Deny {
		return invalid("permission %q is neither allow nor deny", b.Permission)
	}
	return nil
}

// Filter selects bindings to list or delete: an empty field matches any
// value; a set field matches exactly.
type Filter struct {
	Principal  string       `json:"principal,omitempty"`
	Host       string       `json:"host,omitempty"`
	Resource   ResourceType `json:"resource_type,omitempty"`
	Name       string       `json:"name,omitempty"`
	Pattern    PatternType  `json:"pattern_type,omitempty"`
	Operation  Operation    `json:"operation,omitempty"`
	Permission Permission   `json:"permission,omitempty"`
}

// Matches reports whether b is selected by f.
func (f Filter) Matches(b Binding) bool {
	return (f.Principal == "" || f.Principal == b.Principal) &&
		(f.Host == "" || f.Host == b.Host) &&
		(f.Resource == "" || f.Resource == b.Resource) &&
		(f.Name == "" || f.Name == b.Name) &&
		(f.Pattern == "" || f.Pattern == b.Pattern) &&
		(f.Operation == "" || f.Operation == b.Operation) &&
		(f.Permission == "" || f.Permission == b.Permission)
}
