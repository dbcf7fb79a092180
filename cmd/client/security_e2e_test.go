package main

// strata user and strata acl against an in-process broker.

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stratalog/strata/internal/brokertest"
	"github.com/stratalog/strata/pkg/broker"
)

func TestCLIUsersAndACLs(t *testing.T) {
	addr := brokertest.Start(t)
	r := runCLI(t, addr, "s3cret\n", "user", "create", "alice").ok(t)
	if !strings.Contains(r.stdout, `user "alice": SCRAM-SHA-256 credential set`) {
		t.Errorf("create: %q", r.stdout)
	}
	runCLI(t, addr, "", "user", "create", "alice", "--mechanism", "scram-sha-512", "--password", "other", "--iterations", "8192").ok(t)
	r = runCLI(t, addr, "", "user", "list").ok(t)
	if !strings.Contains(r.stdout, "alice  SCRAM-SHA-256 (4096 iterations), SCRAM-SHA-512 (8192 iterations)") {
		t.Errorf("list: %q", r.stdout)
	}
	r = runCLI(t, addr, "", "user", "list", "-o", "json").ok(t)
	var users []userJSON
	if err := json.Unmarshal([]byte(r.stdout), &users); err != nil || len(users) != 1 || len(users[0].Mechanisms) != 2 {
		t.Errorf("list json %q: %v", r.stdout, err)
	}
	if strings.Contains(strings.ToLower(r.stdout), "key") || strings.Contains(r.stdout, "salt") {
		t.Errorf("user list shows key material: %q", r.stdout)
	}
	r = runCLI(t, addr, "", "user", "create", "bob", "--iterations", "100")
	if r.code == 0 || !strings.Contains(r.stderr, "--iterations 100: want 4096 to 16384") {
		t.Errorf("few iterations: %q", r.stderr)
	}

	runCLI(t, addr, "", "acl", "create", "--allow-principal", "User:alice", "--operation", "write", "--operation", "read",
		"--topic", "orders", "--group", "billing").ok(t)
	runCLI(t, addr, "", "acl", "create", "--deny-principal", "User:alice", "--operation", "all", "--topic", "pay-",
		"--resource-pattern-type", "prefixed").ok(t)
	r = runCLI(t, addr, "", "acl", "list", "-o", "json").ok(t)
	var acls []aclJSON
	if err := json.Unmarshal([]byte(r.stdout), &acls); err != nil || len(acls) != 5 {
		t.Fatalf("acl list json %q: %v", r.stdout, err)
	}
	r = runCLI(t, addr, "", "acl", "list", "--topic", "pay-").ok(t)
	if !strings.Contains(r.stdout, "User:alice  *     topic     pay-  prefixed  all        deny") {
		t.Errorf("acl list table: %q", r.stdout)
	}
	r = runCLI(t, addr, "", "acl", "create", "--allow-principal", "alice", "--operation", "read", "--topic", "x")
	if r.code == 0 || !strings.Contains(r.stderr, `principal "alice" is not Type:name`) {
		t.Errorf("bad principal: %q", r.stderr)
	}
	r = runCLI(t, addr, "", "acl", "delete")
	if r.code == 0 || !strings.Contains(r.stderr, "name what to delete") {
		t.Errorf("delete with no filter: %q", r.stderr)
	}
	r = runCLI(t, addr, "", "acl", "delete", "--group", "billing").ok(t)
	if !strings.Contains(r.stdout, "deleted 2 ACLs") {
		t.Errorf("delete: %q", r.stdout)
	}
	runCLI(t, addr, "", "user", "delete", "alice").ok(t)
	r = runCLI(t, addr, "", "user", "delete", "alice")
	if r.code == 0 || !strings.Contains(r.stderr, `user "alice" does not exist (list the users with: strata user list)`) {
		t.Errorf("delete twice: %q", r.stderr)
	}

	// --user against a listener that does not take SASL says so.
	r = runCLI(t, addr, "", "topic", "list", "--user", "alice", "--password", "x")
	if r.code == 0 || !strings.Contains(r.stderr, "does not take SASL authentication: connect without --user") {
		t.Errorf("SASL on a PLAINTEXT listener: %q", r.stderr)
	}
	r = runCLI(t, addr, "", "topic", "list", "--user", "alice")
	if r.code == 0 || !strings.Contains(r.stderr, "--user alice needs a password: pass --password or set STRATA_PASSWORD") {
		t.Errorf("no password: %q", r.stderr)
	}
}

// TestCLISASL: against a SASL_PLAINTEXT listener, strata authenticates
// with --user/--password or STRATA_USER/STRATA_PASSWORD, and says what to
// pass when it cannot; ACLs decide the rest.
func TestCLISASL(t *testing.T) {
	b := brokertest.StartBroker(t, func(c *broker.Config) {
		c.Listeners = []string{"CLIENT://127.0.0.1:0", "SASL://127.0.0.1:0"}
		c.ListenerSecurityProtocolMap = []string{"SASL:SASL_PLAINTEXT"}
		c.SuperUsers = []string{"User:admin", "User:ANONYMOUS"} // plaintext callers make the users
	})
	plain, sasl := b.ListenerAddr("CLIENT"), b.ListenerAddr("SASL")
	runCLI(t, plain, "", "user", "create", "admin", "--password", "admin-pw").ok(t)
	runCLI(t, plain, "", "user", "create", "bob", "--password", "bob-pw", "--mechanism", "SCRAM-SHA-512").ok(t)

	r := runCLI(t, sasl, "", "topic", "list")
	if r.code == 0 || !strings.Contains(r.stderr, "requires SASL/SCRAM authentication: pass --user and --password (or set STRATA_USER and STRATA_PASSWORD") {
		t.Errorf("anonymous: %q", r.stderr)
	}
	r = runCLI(t, sasl, "", "topic", "list", "--user", "admin", "--password", "wrong")
	if r.code == 0 || !strings.Contains(r.stderr, "authentication failed for user admin: check --user and --password") {
		t.Errorf("wrong password: %q", r.stderr)
	}
	runCLI(t, sasl, "", "topic", "create", "orders", "--user", "admin", "--password", "admin-pw").ok(t)
	bob := []string{"--user", "bob", "--password", "bob-pw", "--sasl-mechanism", "scram-sha-512"}
	r = runCLI(t, sasl, "x\n", append(bob, "produce", "orders")...)
	// The producer's metadata asks first: bob may not even describe it
	// (not "does not exist").
	if r.code == 0 || !strings.Contains(r.stderr, "User:bob may not DESCRIBE topic orders: add an ACL with `strata acl create --allow-principal User:bob --operation describe --topic orders`") {
		t.Errorf("bob without an ACL: %q", r.stderr)
	}
	runCLI(t, sasl, "", "acl", "create", "--user", "admin", "--password", "admin-pw",
		"--allow-principal", "User:bob", "--operation", "write", "--operation", "read", "--topic", "orders").ok(t)
	runCLI(t, sasl, "x\n", append(bob, "produce", "orders")...).ok(t)
	if r = runCLI(t, sasl, "", append(bob, "consume", "orders", "-n", "1", "-f", "%v")...).ok(t); r.stdout != "x" {
		t.Errorf("bob consumes %q", r.stdout)
	}
}
