// Package acl is Strata's access control lists, in Kafka's model: a
// Binding lets (or forbids) a principal ("User:alice") do an operation
// (read, write, ...) to the resources of one type (topic, group, cluster,
// transactional-id) whose names match a literal or prefixed pattern, from a
// host ("*" or one IP address). A matching deny always wins; a principal
// with no matching allow is refused.
//
// The bindings themselves live in the metadata quorum (metadata.CreateACLs,
// metadata.DeleteACLs); this package owns their meaning: validation, the
// filters that list and delete them, and the Index that answers each
// request's checks.
//
// Usage:
//
//	ix := acl.NewIndex(bindings)
//	if !ix.Allowed("User:bob", "10.0.0.7", acl.Write, acl.Topic, "orders") { ... }
//
// The caller's duties:
//  1. Validate a Binding before storing it (Binding.Validate).
//  2. Treat an Index as immutable and build a new one when the bindings
//     change; Allowed is then safe from any goroutine.
//  3. Decide super users and whether ACLs apply at all: the Index knows
//     only bindings (the broker's authorizer, pkg/broker/authz.go, does
//     the rest).
package acl
