package metadata

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/stratalog/strata/pkg/acl"
	"github.com/stratalog/strata/pkg/apierr"
)

func goodCredential(user, mech string) UpsertScramCredential {
	n := ScramKeyLen(mech)
	return UpsertScramCredential{User: user, Mechanism: mech, Salt: bytes.Repeat([]byte{1}, 16), Iterations: 4096,
		StoredKey: bytes.Repeat([]byte{2}, n), ServerKey: bytes.Repeat([]byte{3}, n)}
}

var aliceReadsOrders = acl.Binding{Principal: "User:alice", Host: "*", Resource: acl.Topic, Name: "orders",
	Pattern: acl.Literal, Operation: acl.Read, Permission: acl.Allow}

// TestSecurityChangesRefused: users and ACLs are validated at apply like
// every change, and a refused one leaves the state as it was.
func TestSecurityChangesRefused(t *testing.T) {
	with := func(f func(*UpsertScramCredential)) Change {
		c := goodCredential("alice", ScramSHA256)
		f(&c)
		return c
	}
	bad := aliceReadsOrders
	bad.Host = "example.com"
	tests := []struct {
		name string
		c    Change
		want error
	}{
		{"empty user", with(func(c *UpsertScramCredential) { c.User = "" }), apierr.ErrInvalidRequest},
		{"space in user", with(func(c *UpsertScramCredential) { c.User = "a b" }), apierr.ErrInvalidRequest},
		{"long user", with(func(c *UpsertScramCredential) { c.User = strings.Repeat("a", 256) }), apierr.ErrInvalidRequest},
		{"unknown mechanism", with(func(c *UpsertScramCredential) { c.Mechanism = "PLAIN" }), apierr.ErrInvalidRequest},
		{"few iterations", with(func(c *UpsertScramCredential) { c.Iterations = 4095 }), apierr.ErrInvalidRequest},
		{"many iterations", with(func(c *UpsertScramCredential) { c.Iterations = 16385 }), apierr.ErrInvalidRequest},
		{"short salt", with(func(c *UpsertScramCredential) { c.Salt = []byte{1} }), apierr.ErrInvalidRequest},
		{"short key", with(func(c *UpsertScramCredential) { c.StoredKey = c.StoredKey[:31] }), apierr.ErrInvalidRequest},
		{"512 with 256 keys", with(func(c *UpsertScramCredential) { c.Mechanism = ScramSHA512 }), apierr.ErrInvalidRequest},
		{"delete unknown user", DeleteUser{User: "nobody"}, apierr.ErrUnknownUser},
		{"no ACLs", CreateACLs{}, apierr.ErrInvalidRequest},
		{"host name in ACL", CreateACLs{Bindings: []acl.Binding{bad}}, apierr.ErrInvalidRequest},
		{"no filters", DeleteACLs{}, apierr.ErrInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validState(t)
			before := s.clone()
			next := s.clone()
			if err := next.apply(tt.c); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if !reflect.DeepEqual(s, before) {
				t.Fatal("a refused change modified the state")
			}
		})
	}
}

// TestSecuritySnapshotRoundTrip: users and ACLs survive a snapshot and a
// restore, and the restored ACL index answers as the original.
func TestSecuritySnapshotRoundTrip(t *testing.T) {
	f := &fsm{st: validState(t), notify: func() {}}
	denyBob := aliceReadsOrders
	denyBob.Principal, denyBob.Permission = "User:bob", acl.Deny
	for _, c := range []Change{
		goodCredential("alice", ScramSHA256),
		goodCredential("alice", ScramSHA512),
		goodCredential("bob", ScramSHA512),
		DeleteUser{User: "bob"},
		CreateACLs{Bindings: []acl.Binding{aliceReadsOrders, aliceReadsOrders, denyBob}},
		DeleteACLs{Filters: []acl.Filter{{Principal: "User:bob"}}},
	} {
		enc, err := EncodeChange(c)
		if err != nil {
			t.Fatal(err)
		}
		if res := f.Apply(&raft.Log{Data: enc}); res != nil {
			t.Fatalf("%T: %v", c, res)
		}
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	restored := &fsm{notify: func() {}}
	if err := restored.Restore(io.NopCloser(bytes.NewReader(snap.(snapshot)))); err != nil {
		t.Fatal(err)
	}
	st := restored.read()
	if len(st.Users) != 1 || len(st.Users["alice"].Credentials) != 2 {
		t.Fatalf("users after restore: %+v", st.Users)
	}
	if !reflect.DeepEqual(st.ACLs, []acl.Binding{aliceReadsOrders}) {
		t.Fatalf("ACLs after restore: %+v", st.ACLs)
	}
	if !st.aclIndex.Allowed("User:alice", "10.0.0.1", acl.Read, acl.Topic, "orders") {
		t.Fatal("restored index does not allow what the ACLs allow")
	}
	if bytes.Contains(snap.(snapshot), []byte("password")) {
		t.Fatal("a snapshot mentions a password")
	}
}
