package broker_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/brokertest"
	"github.com/stratalog/strata/pkg/broker"
	"github.com/stratalog/strata/pkg/tlsconfig"
)

// The inter-broker listener (issue 12 item 1): the internal service is
// served there only, to peers that prove the cluster secret or present a
// certificate of the cluster's CA.

// A client calling the internal service on the API port gets
// Unimplemented: it is not served there.
func TestInternalServiceNotOnAPI(t *testing.T) {
	b := brokertest.StartBroker(t)
	ic := v1.NewStrataInternalClient(grpcConn(t, b.APIAddr()))
	_, err := ic.ApplyMetadata(ctx(t), &v1.ApplyMetadataRequest{Change: []byte(`{}`)})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("ApplyMetadata on the API port: %v, want Unimplemented", err)
	}
	_, err = ic.ChangeReplicas(ctx(t), &v1.ChangeReplicasRequest{})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("ChangeReplicas on the API port: %v, want Unimplemented", err)
	}
	_, err = ic.ReplicaStatus(ctx(t), &v1.ReplicaStatusRequest{})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("ReplicaStatus on the API port: %v, want Unimplemented", err)
	}
	// On the inter-broker listener, with the secret, it answers.
	if _, err := dialInternal(t, b).ReplicaStatus(ctx(t), &v1.ReplicaStatusRequest{}); err != nil {
		t.Fatalf("ReplicaStatus on the inter-broker listener: %v", err)
	}
	// With another secret, the dial itself fails.
	cc, err := broker.DialInternal(b.RaftAddr(), broker.Config{ClusterSecret: "not-the-cluster-secret-at-all"})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if _, err := v1.NewStrataInternalClient(cc).ReplicaStatus(ctx(t), &v1.ReplicaStatusRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("ReplicaStatus with another secret: %v, want Unavailable (the connection refused)", err)
	}
	if n := metric(t, b, "strata_interbroker_auth_failures_total"); n < 1 {
		t.Fatalf("strata_interbroker_auth_failures_total = %v after a wrong secret, want >= 1", n)
	}
}

// metric reads one unlabelled sample from b's /metrics.
func metric(t *testing.T, b *broker.Broker, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + b.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err == nil {
				return f
			}
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return 0
}

// derivedGossipKey is the gossip key brokers derive from secret
// (interbroker.go: gossipKeyFor), as --gossip-key.
func derivedGossipKey(secret string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("strata gossip key v1"))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// A broker started with another secret does not join the cluster's raft
// groups, and the logs say why. It is given the cluster's gossip key, so
// that gossip lets it in and the cluster registers it: only the
// inter-broker handshake keeps it out.
func TestWrongSecretDoesNotJoin(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	cl := brokertest.StartObservedCluster(t, 3, core)
	c := newClient(t, cl.APIAddrs())
	if _, err := c.Admin().CreateTopic(ctx(t), "orders", 3, 3, nil); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, c, "orders")
	cfg := brokertest.Config(t, 4)
	cfg.Join = []string{cl.Configs[0].GossipAddr}
	cfg.ClusterSecret = "another-cluster-secret-0123456789"
	cfg.GossipKey = derivedGossipKey(brokertest.ClusterSecret)
	intruder := brokertest.Run(t, cfg) // its log goes to the test's output only

	eventually(t, "the cluster logs the intruder's failed authentication", func() bool {
		return logs.FilterMessageSnippet("failed authentication").Len() > 0
	})
	e := logs.FilterMessageSnippet("failed authentication").All()[0]
	if why := e.ContextMap()["error"]; !strings.Contains(why.(string), "cluster secret") {
		t.Fatalf("the warning does not say why: %v", e.ContextMap())
	}
	if intruder.Ready() {
		t.Fatal("a broker with another secret got the cluster's metadata")
	}
	var failures float64
	for _, b := range cl.Brokers {
		failures += metric(t, b, "strata_interbroker_auth_failures_total")
	}
	if failures < 1 {
		t.Fatalf("auth failures counted by the cluster: %v", failures)
	}
	// The cluster still works.
	sameLanding(t, produceN(t, c, "orders", "v", 30), readAll(t, c, "orders", 30))
}

// With inter-broker TLS (and no secret), a cluster forms and replicates;
// a peer with a certificate from another CA is refused.
func TestInterbrokerTLSCluster(t *testing.T) {
	dir := t.TempDir()
	ca, err := tlsconfig.NewCA("strata-test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, tlsconfig.CertPEM(ca.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	issue := func(ca *tlsconfig.CA, name string) (cert, key string) {
		leaf, err := ca.Issue(name, []string{"127.0.0.1", "localhost"}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		cert, key = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
		if err := tlsconfig.WriteFiles(leaf.Cert, leaf.Key, cert, key, true); err != nil {
			t.Fatal(err)
		}
		return cert, key
	}
	cl := brokertest.StartCluster(t, 3, func(c *broker.Config) {
		c.ClusterSecret = ""
		c.TLSCert, c.TLSKey = issue(ca, "broker-"+string(rune('0'+c.NodeID)))
		c.TLSCA = caFile
		c.GossipKey = derivedGossipKey(brokertest.ClusterSecret)
	})
	c := newClient(t, cl.APIAddrs())
	if _, err := c.Admin().CreateTopic(ctx(t), "tls", 1, 3, nil); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, c, "tls")
	sameLanding(t, produceN(t, c, "tls", "v", 20), readAll(t, c, "tls", 20))

	// A certificate the cluster's CA signed reaches the internal service.
	cert, key := issue(ca, "tool")
	cc, err := broker.DialInternal(cl.Brokers[0].RaftAddr(), broker.Config{TLSCert: cert, TLSKey: key, TLSCA: caFile})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if _, err := v1.NewStrataInternalClient(cc).ReplicaStatus(ctx(t), &v1.ReplicaStatusRequest{}); err != nil {
		t.Fatalf("internal call with the cluster's CA: %v", err)
	}
	// Another CA's is refused.
	other, err := tlsconfig.NewCA("other", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = issue(other, "intruder")
	both := filepath.Join(dir, "both.pem")
	os.WriteFile(both, append(tlsconfig.CertPEM(ca.Cert), tlsconfig.CertPEM(other.Cert)...), 0o644)
	bad, err := broker.DialInternal(cl.Brokers[0].RaftAddr(), broker.Config{TLSCert: cert, TLSKey: key, TLSCA: both})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if _, err := v1.NewStrataInternalClient(bad).ReplicaStatus(ctx(t), &v1.ReplicaStatusRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("internal call with another CA's certificate: %v, want Unavailable", err)
	}
}

// The secret policy: a broker alone makes its own secret (0600, kept
// across restarts); one that joins or expects others needs one.
func TestClusterSecretPolicy(t *testing.T) {
	alone := brokertest.Config(t, 1)
	alone.ClusterSecret = ""
	if err := alone.Validate(); err != nil {
		t.Fatalf("a broker alone without a secret: %v", err)
	}
	b, err := broker.New(alone, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	path := filepath.Join(alone.DataDir, "cluster-secret")
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("generated secret: %v, %v; want a 0600 file", st, err)
	}
	first, _ := os.ReadFile(path)
	if b, err = broker.New(alone, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if again, _ := os.ReadFile(path); string(again) != string(first) || len(strings.TrimSpace(string(first))) != 64 {
		t.Fatalf("secret changed across restarts or is not 32 hex bytes: %q then %q", first, again)
	}

	for _, tc := range []struct {
		name string
		mod  func(c *broker.Config)
		want string // in the error; "" = valid
	}{
		{"join without secret", func(c *broker.Config) { c.Join = []string{"127.0.0.1:1"} }, "openssl rand -hex 32"},
		{"expect 3 without secret", func(c *broker.Config) { c.BootstrapExpect = 3 }, "--cluster-secret-file"},
		{"join with secret", func(c *broker.Config) { c.Join = []string{"127.0.0.1:1"}; c.ClusterSecret = brokertest.ClusterSecret }, ""},
		{"join with TLS", func(c *broker.Config) {
			c.Join = []string{"127.0.0.1:1"}
			c.TLSCert, c.TLSKey, c.TLSCA = "c.pem", "k.pem", "ca.pem"
		}, ""},
		{"both secret and file", func(c *broker.Config) { c.ClusterSecret = brokertest.ClusterSecret; c.ClusterSecretFile = "/x" }, "give one"},
		{"short secret", func(c *broker.Config) { c.ClusterSecret = "short" }, "shorter than 16"},
		{"bad gossip key", func(c *broker.Config) { c.GossipKey = "AAAA" }, "--gossip-key: 3 bytes"},
		{"good gossip key", func(c *broker.Config) { c.GossipKey = base64.StdEncoding.EncodeToString(make([]byte, 32)) }, ""},
	} {
		c := broker.DefaultConfig()
		tc.mod(&c)
		err := c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
}

// The secret never reaches the log, even at debug.
func TestClusterSecretNotLogged(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	brokertest.StartObservedCluster(t, 2, core, func(c *broker.Config) { c.LogLevel = "debug" })
	if logs.Len() == 0 {
		t.Fatal("nothing logged at debug")
	}
	for _, e := range logs.All() {
		line := e.Message
		for k, v := range e.ContextMap() {
			line += " " + k + "=" + fmt.Sprint(v)
		}
		if strings.Contains(line, brokertest.ClusterSecret) {
			t.Fatalf("the cluster secret is in the log: %s", line)
		}
	}
}
