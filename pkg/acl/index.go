package acl

import (
	"slices"
)

// Index answers "may this principal do this?" against a fixed set of
// bindings. It is immutable once built, so it is shared by every request
// without locks; a change to the ACLs builds a new one.
//
// A check looks up three kinds of keys, so it costs the same with 10 or
// 10,000 bindings (docs/operations.md, Security, has the figures): the
// literal name, the literal "*", and each prefix of the name that some
// prefixed binding of that resource type uses. Only the bindings stored
// under those keys are compared with the principal, host and operation.
//
// The rejected alternative, a scan of every binding per request (what a
// first version of Kafka's authorizer did), costs microseconds at a few
// thousand bindings: more than a produce of one small batch.
type Index struct {
	byKey map[key][]Binding
	// prefixLens lists, per resource type, the lengths of the prefixes
	// that prefixed bindings use, ascending.
	prefixLens map[ResourceType][]int
	n          int
}

type key struct {
	rt      ResourceType
	pattern PatternType
	name    string
}

// NewIndex indexes bindings (which it does not keep or change).
func NewIndex(bindings []Binding) *Index {
	ix := &Index{byKey: map[key][]Binding{}, prefixLens: map[ResourceType][]int{}, n: len(bindings)}
	for _, b := range bindings {
		k := key{b.Resource, b.Pattern, b.Name}
		ix.byKey[k] = append(ix.byKey[k], b)
		if b.Pattern == Prefixed && !slices.Contains(ix.prefixLens[b.Resource], len(b.Name)) {
			ix.prefixLens[b.Resource] = append(ix.prefixLens[b.Resource], len(b.Name))
		}
	}
	for _, l := range ix.prefixLens {
		slices.Sort(l)
	}
	return ix
}

// Len is the number of bindings indexed.
func (ix *Index) Len() int {
	if ix == nil {
		return 0
	}
	return ix.n
}

// Allowed reports whether principal, connected from host (an IP address),
// may do op to the resource of type rt named name: some binding allows it
// and none denies it. As in Kafka, an allow of read, write, delete or alter
// also allows describe, and an allow of alter-configs allows
// describe-configs; a deny denies only its own operation (or all of them).
// A nil Index allows nothing.
func (ix *Index) Allowed(principal, host string, op Operation, rt ResourceType, name string) bool {
	if ix == nil {
		return false
	}
	allowed := false
	visit := func(bs []Binding) bool { // false: denied
		for i := range bs {
			b := &bs[i]
			if b.Principal != principal && b.Principal != WildcardPrincipal {
				continue
			}
			if b.Host != Wildcard && b.Host != host {
				continue
			}
			if b.Permission == Deny {
				if b.Operation == op || b.Operation == All {
					return false
				}
				continue
			}
			if !allowed && implies(b.Operation, op) {
				allowed = true
			}
		}
		return true
	}
	if !visit(ix.byKey[key{rt, Literal, name}]) {
		return false
	}
	if name != Wildcard && !visit(ix.byKey[key{rt, Literal, Wildcard}]) {
		return false
	}
	for _, l := range ix.prefixLens[rt] {
		if l > len(name) {
			break
		}
		if !visit(ix.byKey[key{rt, Prefixed, name[:l]}]) {
			return false
		}
	}
	return allowed
}

// implies reports whether an allow of have grants want.
func implies(have, want Operation) bool {
	if have == want || have == All {
		return true
	}
	switch want {
	case Describe:
		return have == Read || have == Write || have == Delete || have == Alter
	case DescribeConfigs:
		return have == AlterConfigs
	}
	return false
}
