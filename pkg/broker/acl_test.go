package broker_test

import (
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/brokertest"
	"github.com/stratalog/strata/pkg/broker"
	"github.com/stratalog/strata/pkg/client"
)

func aclFor(principal, op, rt, name, pattern, permission string) *v1.AclBinding {
	return &v1.AclBinding{Principal: principal, Host: "*", ResourceType: rt, Name: name, PatternType: pattern, Operation: op, Permission: permission}
}

// TestACLs: with SASL on, ACLs decide, call by call, what a user may do:
// produce, fetch, group join and commit, topic create and delete, config
// changes; deny beats allow, prefixed patterns match, listings show only
// what the user may describe, and a super user needs no ACL.
func TestACLs(t *testing.T) {
	// A SASL listener: --authorizer auto enforces ACLs. The plaintext
	// listener's callers (User:ANONYMOUS) are super users here, to make
	// the users; admin is one on the SASL listener.
	b, plainAddr, saslAddr := saslBroker(t, func(c *broker.Config) { c.SuperUsers = []string{"User:admin", "User:ANONYMOUS"} })
	plain := dial(t, plainAddr)
	addUser(t, plain, client.ScramSHA256, "admin", "admin-pw")
	addUser(t, plain, client.ScramSHA256, "bob", "bob-pw")
	open := dial(t, saslAddr)

	r, err := login(t, open, client.ScramSHA256, "admin", "admin-pw")
	if err != nil {
		t.Fatal(err)
	}
	admin := as(t, saslAddr, r.Token)
	for _, name := range []string{"orders", "pay-eu", "pay-secret", "hidden"} {
		if _, err := admin.CreateTopic(ctx(t), &v1.CreateTopicRequest{Name: name, Partitions: 1}); err != nil {
			t.Fatalf("super user creates %s: %v", name, err)
		}
	}
	r, err = login(t, open, client.ScramSHA256, "bob", "bob-pw")
	if err != nil {
		t.Fatal(err)
	}
	bob := as(t, saslAddr, r.Token)
	allow := func(op, rt, name, pattern string) {
		t.Helper()
		if _, err := admin.CreateACLs(ctx(t), &v1.CreateACLsRequest{Acls: []*v1.AclBinding{aclFor("User:bob", op, rt, name, pattern, "allow")}}); err != nil {
			t.Fatal(err)
		}
	}
	denied := func(what string, err error, text string) {
		t.Helper()
		wantStatus(t, what, err, codes.PermissionDenied, text)
	}
	produce := func(topic string) error {
		_, err := bob.Produce(ctx(t), &v1.ProduceRequest{Topic: topic, Partitions: []*v1.ProducePartition{{Batches: encode(t, "x")}}})
		return err
	}

	// Produce: write on the topic.
	denied("produce", produce("orders"), "User:bob may not WRITE topic orders: add an ACL with `strata acl create --allow-principal User:bob --operation write --topic orders`")
	allow("write", "topic", "orders", "literal")
	if err := produce("orders"); err != nil {
		t.Fatalf("produce after the ACL: %v", err)
	}
	// Fetch: read on the topic.
	fetch := func() error {
		_, err := bob.Fetch(ctx(t), &v1.FetchRequest{Partitions: []*v1.FetchPartition{{Topic: "orders"}}})
		return err
	}
	denied("fetch", fetch(), "may not READ topic orders")
	allow("read", "topic", "orders", "literal")
	if err := fetch(); err != nil {
		t.Fatalf("fetch after the ACL: %v", err)
	}
	// Prefixed patterns; deny beats allow.
	allow("write", "topic", "pay-", "prefixed")
	if err := produce("pay-eu"); err != nil {
		t.Fatalf("produce under a prefixed ACL: %v", err)
	}
	if _, err := admin.CreateACLs(ctx(t), &v1.CreateACLsRequest{Acls: []*v1.AclBinding{aclFor("User:bob", "all", "topic", "pay-secret", "literal", "deny")}}); err != nil {
		t.Fatal(err)
	}
	denied("deny beats allow", produce("pay-secret"), "may not WRITE topic pay-secret")

	// Group join (heartbeat) needs read on the group; a commit also read
	// on the topic.
	hb := func() (*v1.GroupHeartbeatResponse, error) {
		return bob.GroupHeartbeat(ctx(t), &v1.GroupHeartbeatRequest{Group: "g", Topics: []string{"orders"}})
	}
	_, err = hb()
	denied("join", err, "may not READ group g")
	allow("read", "group", "g", "literal")
	var joined *v1.GroupHeartbeatResponse
	eventually(t, "bob joins g", func() bool {
		joined, err = hb()
		return err == nil
	})
	commit := func(topic string) error {
		_, err := bob.CommitOffsets(ctx(t), &v1.CommitOffsetsRequest{Group: "g", MemberId: joined.MemberId, MemberEpoch: joined.MemberEpoch,
			Offsets: []*v1.OffsetCommit{{Topic: topic, Partition: 0, Offset: 1}}})
		return err
	}
	denied("commit for a topic bob may not read", commit("hidden"), "may not READ topic hidden")
	if err := commit("orders"); err != nil {
		t.Fatalf("commit: %v", err)
	}

	// Topic create and delete; config changes.
	_, err = bob.CreateTopic(ctx(t), &v1.CreateTopicRequest{Name: "bobs", Partitions: 1})
	denied("create", err, "may not CREATE topic bobs")
	allow("create", "topic", "bob", "prefixed")
	if _, err := bob.CreateTopic(ctx(t), &v1.CreateTopicRequest{Name: "bobs", Partitions: 1}); err != nil {
		t.Fatalf("create after the ACL: %v", err)
	}
	alter := func() error {
		_, err := bob.AlterTopicConfig(ctx(t), &v1.AlterTopicConfigRequest{Name: "bobs", Set: map[string]string{"retention.ms": "60000"}})
		return err
	}
	denied("alter config", alter(), "may not ALTER-CONFIGS topic bobs")
	allow("alter-configs", "topic", "bobs", "literal")
	if err := alter(); err != nil {
		t.Fatalf("alter config after the ACL: %v", err)
	}
	_, err = bob.DeleteTopic(ctx(t), &v1.DeleteTopicRequest{Name: "bobs"})
	denied("delete", err, "may not DELETE topic bobs")
	allow("delete", "topic", "bobs", "literal")
	if _, err := bob.DeleteTopic(ctx(t), &v1.DeleteTopicRequest{Name: "bobs"}); err != nil {
		t.Fatalf("delete after the ACL: %v", err)
	}

	// Cluster operations and the ACLs themselves.
	_, err = bob.CreateACLs(ctx(t), &v1.CreateACLsRequest{Acls: []*v1.AclBinding{aclFor("User:bob", "all", "cluster", "strata-cluster", "literal", "allow")}})
	denied("bob grants himself", err, "may not ALTER the cluster: add an ACL with `strata acl create --allow-principal User:bob --operation alter --cluster`")

	// Listings show what bob may describe: orders (read, write), pay-eu
	// (prefixed write); not pay-secret (denied all) nor hidden.
	want := []string{"orders", "pay-eu"}
	lt, err := bob.ListTopics(ctx(t), &v1.ListTopicsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tp := range lt.Topics {
		names = append(names, tp.Name)
	}
	if !slices.Equal(names, want) {
		t.Fatalf("bob lists %v, want %v", names, want)
	}
	md, err := bob.Metadata(ctx(t), &v1.MetadataRequest{})
	if err != nil {
		t.Fatal(err)
	}
	names = nil
	for _, tp := range md.Topics {
		names = append(names, tp.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, want) {
		t.Fatalf("bob's metadata has %v, want %v", names, want)
	}
	md, err = bob.Metadata(ctx(t), &v1.MetadataRequest{Topics: []string{"hidden", "orders"}})
	if err != nil {
		t.Fatal(err)
	}
	if md.Topics[0].Error.GetCode() != v1.ErrorCode_ERROR_CODE_AUTHORIZATION_FAILED || len(md.Topics[0].Partitions) != 0 || md.Topics[1].Error != nil {
		t.Fatalf("named metadata: %v", md.Topics)
	}
	// The admin sees everything and the ACLs.
	lt, err = admin.ListTopics(ctx(t), &v1.ListTopicsRequest{})
	if err != nil || len(lt.Topics) != 5 {
		t.Fatalf("super user lists %v %v", lt, err)
	}
	acls, err := admin.ListACLs(ctx(t), &v1.ListACLsRequest{Filter: &v1.AclBinding{Principal: "User:bob", Permission: "deny"}})
	if err != nil || len(acls.Acls) != 1 || acls.Acls[0].Name != "pay-secret" {
		t.Fatalf("list deny ACLs: %v %v", acls, err)
	}
	del, err := admin.DeleteACLs(ctx(t), &v1.DeleteACLsRequest{Filter: &v1.AclBinding{Name: "pay-secret"}})
	if err != nil || len(del.Deleted) != 1 {
		t.Fatalf("delete ACL: %v %v", del, err)
	}
	if err := produce("pay-secret"); err != nil {
		t.Fatalf("produce after the deny was deleted: %v", err)
	}
	if _, err := admin.DeleteACLs(ctx(t), &v1.DeleteACLsRequest{Filter: &v1.AclBinding{}}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("an empty filter: %v", err)
	}

	body := httpGet(t, "http://"+b.HTTPAddr()+"/metrics")
	for _, w := range []string{`strata_authorization_denied_total{operation="write",resource_type="topic"} 2`, `strata_authorization_denied_total{operation="alter",resource_type="cluster"} 1`} {
		if !strings.Contains(body, w) {
			t.Fatalf("metrics lack %s:\n%s", w, grepLines(body, "strata_authorization"))
		}
	}
	// Refused requests count among all requests, with their code.
	if !strings.Contains(body, `strata_requests_total{code="AUTHORIZATION_FAILED",method="Produce"}`) {
		t.Fatalf("a refused produce is not in strata_requests_total:\n%s", grepLines(body, "strata_requests_total"))
	}
}

// TestDefaultStaysOpen: a broker with no authenticating listener (the
// embedded single-node default) enforces no ACLs, even when some exist.
func TestDefaultStaysOpen(t *testing.T) {
	c := dial(t, brokertest.Start(t))
	if _, err := c.CreateACLs(ctx(t), &v1.CreateACLsRequest{Acls: []*v1.AclBinding{aclFor("User:ANONYMOUS", "all", "topic", "*", "literal", "deny")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateTopic(ctx(t), &v1.CreateTopicRequest{Name: "t", Partitions: 1}); err != nil {
		t.Fatalf("the default broker enforced ACLs: %v", err)
	}
}

// TestAuthorizerACLWithoutAuthentication: --authorizer acl enforces ACLs
// on a plaintext listener: User:ANONYMOUS gets what ACLs give it.
func TestAuthorizerACLWithoutAuthentication(t *testing.T) {
	c := dial(t, brokertest.Start(t, func(c *broker.Config) { c.Authorizer = broker.AuthorizerACL }))
	_, err := c.CreateTopic(ctx(t), &v1.CreateTopicRequest{Name: "t", Partitions: 1})
	wantStatus(t, "anonymous create", err, codes.PermissionDenied, "User:ANONYMOUS may not CREATE topic t")
}
