package broker_test

import (
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/brokertest"
	"github.com/stratalog/strata/pkg/broker"
	"github.com/stratalog/strata/pkg/tlsconfig"
)

// TestMTLSPrincipal: over TLS with a client certificate the CA signed,
// the principal is User:<CN>, and ACLs apply to it.
func TestMTLSPrincipal(t *testing.T) {
	dir := t.TempDir()
	ca, err := tlsconfig.NewCA("test-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, hosts []string) tlsconfig.Files {
		leaf, err := ca.Issue(name, hosts, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		f := tlsconfig.Files{Cert: filepath.Join(dir, name+".crt"), Key: filepath.Join(dir, name+".key"), CA: filepath.Join(dir, "ca.crt")}
		if err := tlsconfig.WriteFiles(leaf.Cert, leaf.Key, f.Cert, f.Key, false); err != nil {
			t.Fatal(err)
		}
		return f
	}
	if err := tlsconfig.WriteFiles(ca.Cert, ca.Key, filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key"), false); err != nil {
		t.Fatal(err)
	}
	server, carol := write("broker", []string{"127.0.0.1"}), write("carol", nil)

	// An SSL listener that requires client certificates: --authorizer
	// auto enforces ACLs. Plaintext callers (the test) are super users.
	b := brokertest.StartBroker(t, func(c *broker.Config) {
		c.Listeners = []string{"CLIENT://127.0.0.1:0", "SECURE://127.0.0.1:0"}
		c.ListenerSecurityProtocolMap = []string{"SECURE:SSL"}
		c.TLSCert, c.TLSKey, c.TLSCA, c.TLSClientAuth = server.Cert, server.Key, server.CA, "require"
		c.SuperUsers = []string{"User:ANONYMOUS"}
	})
	admin := dial(t, b.APIAddr())
	ccfg, err := carol.Client("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(b.ListenerAddr("SECURE"), grpc.WithTransportCredentials(credentials.NewTLS(ccfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	c := v1.NewStrataClient(cc)
	_, err = c.CreateTopic(ctx(t), &v1.CreateTopicRequest{Name: "c-1", Partitions: 1})
	wantStatus(t, "carol before her ACL", err, codes.PermissionDenied, "User:carol may not CREATE topic c-1")
	if _, err := admin.CreateACLs(ctx(t), &v1.CreateACLsRequest{Acls: []*v1.AclBinding{aclFor("User:carol", "create", "topic", "c-", "prefixed", "allow")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateTopic(ctx(t), &v1.CreateTopicRequest{Name: "c-1", Partitions: 1}); err != nil {
		t.Fatalf("carol under her ACL: %v", err)
	}
	_, err = c.CreateTopic(ctx(t), &v1.CreateTopicRequest{Name: "d-1", Partitions: 1})
	wantStatus(t, "carol outside her ACL", err, codes.PermissionDenied, "User:carol may not CREATE topic d-1")
}
