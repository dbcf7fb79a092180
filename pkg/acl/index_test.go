package acl

import (
	"fmt"
	"testing"
)

func allow(principal string, rt ResourceType, name string, pt PatternType, op Operation) Binding {
	return Binding{Principal: principal, Host: "*", Resource: rt, Name: name, Pattern: pt, Operation: op, Permission: Allow}
}

func deny(principal string, rt ResourceType, name string, pt PatternType, op Operation) Binding {
	b := allow(principal, rt, name, pt, op)
	b.Permission = Deny
	return b
}

func TestIndexAllowed(t *testing.T) {
	fromHost := allow("User:carol", Topic, "orders", Literal, Write)
	fromHost.Host = "10.0.0.9"
	ix := NewIndex([]Binding{
		allow("User:alice", Topic, "orders", Literal, Read),
		allow("User:alice", Topic, "pay-", Prefixed, Write),
		deny("User:alice", Topic, "pay-secret", Literal, Write),
		allow("User:*", Topic, "public", Literal, All),
		deny("User:mallory", Topic, "*", Literal, All),
		allow("User:mallory", Topic, "public", Literal, Read),
		allow("User:ops", Cluster, ClusterName, Literal, Alter),
		allow("User:dave", Topic, "logs", Literal, AlterConfigs),
		fromHost,
	})
	tests := []struct {
		principal string
		op        Operation
		rt        ResourceType
		name      string
		want      bool
	}{
		{"User:alice", Read, Topic, "orders", true},
		{"User:alice", Describe, Topic, "orders", true}, // read implies describe
		{"User:alice", Write, Topic, "orders", false},
		{"User:alice", Read, Topic, "orders2", false},
		{"User:alice", Write, Topic, "pay-eu", true},      // prefixed
		{"User:alice", Write, Topic, "pay-", true},        // the prefix itself
		{"User:alice", Write, Topic, "pay", false},        // shorter than the prefix
		{"User:alice", Write, Topic, "pay-secret", false}, // deny wins
		{"User:alice", Read, Group, "orders", false},      // other resource type
		{"User:bob", Write, Topic, "public", true},        // User:* and All
		{"User:mallory", Read, Topic, "public", false},    // deny * beats allow
		{"User:ops", Alter, Cluster, ClusterName, true},
		{"User:ops", Describe, Cluster, ClusterName, true},
		{"User:ops", Create, Cluster, ClusterName, false},
		{"User:dave", DescribeConfigs, Topic, "logs", true},
		{"User:dave", Describe, Topic, "logs", false},
		{"User:carol", Write, Topic, "orders", true}, // from 10.0.0.9 below
		{"User:nobody", Describe, Topic, "orders", false},
	}
	for _, tt := range tests {
		host := "10.0.0.1"
		if tt.principal == "User:carol" {
			host = "10.0.0.9"
		}
		if got := ix.Allowed(tt.principal, host, tt.op, tt.rt, tt.name); got != tt.want {
			t.Errorf("%s %s %s %s: got %v, want %v", tt.principal, tt.op, tt.rt, tt.name, got, tt.want)
		}
	}
	if ix.Allowed("User:carol", "10.0.0.1", Write, Topic, "orders") {
		t.Error("a binding for host 10.0.0.9 allowed 10.0.0.1")
	}
	var nilIndex *Index
	if nilIndex.Allowed("User:alice", "h", Read, Topic, "orders") {
		t.Error("a nil index allowed")
	}
}

func TestBindingValidate(t *testing.T) {
	good := allow("User:alice", Topic, "orders", Literal, Read)
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]func(*Binding){
		"no principal type": func(b *Binding) { b.Principal = "alice" },
		"host name":         func(b *Binding) { b.Host = "example.com" },
		"resource type":     func(b *Binding) { b.Resource = "table" },
		"empty name":        func(b *Binding) { b.Name = "" },
		"cluster name":      func(b *Binding) { b.Resource, b.Name = Cluster, "x" },
		"pattern":           func(b *Binding) { b.Pattern = "match" },
		"prefixed *":        func(b *Binding) { b.Pattern, b.Name = Prefixed, "*" },
		"operation":         func(b *Binding) { b.Operation = "fly" },
		"permission":        func(b *Binding) { b.Permission = "maybe" },
	} {
		b := good
		f(&b)
		if b.Validate() == nil {
			t.Errorf("%s: accepted %v", name, b)
		}
	}
}

// BenchmarkAllowed is the cost of one ACL check with n bindings: one
// principal's on a prefix and a literal name among n-2 other principals'.
func BenchmarkAllowed(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			bs := []Binding{
				allow("User:alice", Topic, "orders", Literal, Write),
				allow("User:alice", Topic, "ord", Prefixed, Read),
			}
			for i := len(bs); i < n; i++ {
				pt := Literal
				if i%4 == 0 {
					pt = Prefixed
				}
				bs = append(bs, allow(fmt.Sprintf("User:u%d", i), Topic, fmt.Sprintf("topic-%d", i), pt, Write))
			}
			ix := NewIndex(bs)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if !ix.Allowed("User:alice", "10.0.0.1", Write, Topic, "orders") {
					b.Fatal("denied")
				}
			}
		})
	}
}
