package broker_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/brokertest"
	"github.com/stratalog/strata/pkg/broker"
	"github.com/stratalog/strata/pkg/client"
	"github.com/stratalog/strata/pkg/tlsconfig"
)

// Named listeners (issue 12): a client is told the addresses of the
// listener it came in on; TLS on SSL listeners and on the HTTP listener.

// twoListeners gives a test broker a CLIENT and an EXTERNAL listener.
func twoListeners(c *broker.Config) {
	c.APIAddr = ""
	c.Listeners = []string{"CLIENT://127.0.0.1:0", "EXTERNAL://127.0.0.1:0"}
}

// TestMetadataThroughEachListener: one broker, two listeners; Metadata
// through each answers with that listener's address, named in the answer.
func TestMetadataThroughEachListener(t *testing.T) {
	b := brokertest.StartBroker(t, func(c *broker.Config) {
		twoListeners(c)
		c.AdvertisedListeners = []string{"external://ext.example.com:19290"}
	})
	for _, want := range []struct{ name, dial, addr string }{
		{"CLIENT", b.ListenerAddr("CLIENT"), b.ListenerAddr("CLIENT")},
		{"EXTERNAL", b.ListenerAddr("EXTERNAL"), "ext.example.com:19290"},
	} {
		md, err := dial(t, want.dial).Metadata(ctx(t), &v1.MetadataRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if md.Listener != want.name || len(md.Brokers) != 1 || md.Brokers[0].ApiAddr != want.addr {
			t.Errorf("Metadata through %s: listener %q, brokers %v; want %s at %s", want.name, md.Listener, md.Brokers, want.name, want.addr)
		}
	}
	if b.APIAddr() != b.ListenerAddr("CLIENT") {
		t.Errorf("APIAddr %s, want the CLIENT listener's %s", b.APIAddr(), b.ListenerAddr("CLIENT"))
	}
}

// TestExternalListenerCluster: three brokers with CLIENT and EXTERNAL
// listeners, a third broker without EXTERNAL in a second check; the
// client library bootstrapped on an EXTERNAL address produces and
// consumes, and every address it is told is an EXTERNAL one.
func TestExternalListenerCluster(t *testing.T) {
	c := brokertest.StartCluster(t, 3, twoListeners)
	var external []string
	for _, b := range c.Brokers {
		external = append(external, b.ListenerAddr("EXTERNAL"))
	}
	md, err := dial(t, external[1]).Metadata(ctx(t), &v1.MetadataRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var told []string
	for _, br := range md.Brokers {
		told = append(told, br.ApiAddr)
	}
	slices.Sort(told)
	if want := slices.Sorted(slices.Values(external)); !slices.Equal(told, want) {
		t.Fatalf("Metadata through EXTERNAL told %v, want the EXTERNAL addresses %v", told, want)
	}

	cl, err := client.New(external[:1], client.RetryTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.Admin().CreateTopic(ctx(t), "ext", 3, 3, nil); err != nil {
		t.Fatal(err)
	}
	p := cl.NewProducer()
	var recs []*client.Record
	for i := range 30 {
		recs = append(recs, &client.Record{Topic: "ext", Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprint("v", i))})
	}
	if err := p.ProduceSync(ctx(t), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx(t)); err != nil {
		t.Fatal(err)
	}
	cs, err := cl.NewConsumer("ext", client.StartAt(client.Earliest()))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	got := map[string]bool{}
	deadline := time.Now().Add(30 * time.Second)
	for len(got) < 30 && time.Now().Before(deadline) {
		rs, err := cs.Poll(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			got[string(r.Value)] = true
		}
	}
	if len(got) != 30 {
		t.Fatalf("consumed %d distinct records through EXTERNAL, want 30", len(got))
	}

	// A NOT_LEADER reply through EXTERNAL names the leader's EXTERNAL
	// address.
	md, err = dial(t, external[0]).Metadata(ctx(t), &v1.MetadataRequest{Topics: []string{"ext"}})
	if err != nil {
		t.Fatal(err)
	}
	leader := md.Topics[0].Partitions[0].Leader
	other := leader%3 + 1
	resp, err := dial(t, external[other-1]).Produce(ctx(t), &v1.ProduceRequest{Topic: "ext",
		Partitions: []*v1.ProducePartition{{Partition: 0, Batches: encode(t, "x")}}})
	if err != nil {
		t.Fatal(err)
	}
	e := resp.Partitions[0].Error
	if e.GetCode() != v1.ErrorCode_ERROR_CODE_NOT_LEADER || e.GetLeaderAddr() != external[leader-1] {
		t.Fatalf("produce to broker %d (leader %d) through EXTERNAL: error %v, want NOT_LEADER naming %s", other, leader, e, external[leader-1])
	}
}

// TestBrokerWithoutTheListener: a broker without an EXTERNAL listener is
// left out of Metadata answered through EXTERNAL and named in
// brokers_without_listener.
func TestBrokerWithoutTheListener(t *testing.T) {
	c := brokertest.StartCluster(t, 2, func(c *broker.Config) {
		if c.NodeID == 1 {
			twoListeners(c)
		}
	})
	md, err := dial(t, c.Broker(1).ListenerAddr("EXTERNAL")).Metadata(ctx(t), &v1.MetadataRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Brokers) != 1 || md.Brokers[0].NodeId != 1 || !slices.Equal(md.BrokersWithoutListener, []uint32{2}) {
		t.Fatalf("Metadata through EXTERNAL: brokers %v, without listener %v; want only broker 1, and 2 named", md.Brokers, md.BrokersWithoutListener)
	}
	md, err = dial(t, c.Broker(2).APIAddr()).Metadata(ctx(t), &v1.MetadataRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Brokers) != 2 || len(md.BrokersWithoutListener) != 0 {
		t.Fatalf("Metadata through CLIENT: brokers %v, without listener %v; want both", md.Brokers, md.BrokersWithoutListener)
	}
}

// certs is a test CA and files of a broker certificate it signed.
type certs struct {
	ca                *tlsconfig.CA
	caFile, cert, key string
	dir               string
}

func newCerts(t *testing.T) certs {
	t.Helper()
	dir := t.TempDir()
	ca, err := tlsconfig.NewCA("strata test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c := certs{ca: ca, dir: dir, caFile: filepath.Join(dir, "ca.crt"), cert: filepath.Join(dir, "broker.crt"), key: filepath.Join(dir, "broker.key")}
	if err := os.WriteFile(c.caFile, tlsconfig.CertPEM(ca.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue("broker", []string{"127.0.0.1", "localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := tlsconfig.WriteFiles(leaf.Cert, leaf.Key, c.cert, c.key, false); err != nil {
		t.Fatal(err)
	}
	return c
}

// clientCert is a tls.Certificate for name signed by ca, valid from
// notBefore for validity.
func clientCert(t *testing.T, ca *tlsconfig.CA, name string, notBefore time.Time, validity time.Duration) tls.Certificate {
	t.Helper()
	leaf, err := ca.IssueAt(name, nil, notBefore, validity)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := tlsconfig.KeyPEM(leaf.Key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(tlsconfig.CertPEM(leaf.Cert), kp)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (c certs) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.ca.Cert)
	return p
}

// tlsMetadata calls Metadata over TLS with cfg.
func tlsMetadata(t *testing.T, addr string, cfg *tls.Config) error {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = v1.NewStrataClient(cc).Metadata(c, &v1.MetadataRequest{})
	return err
}

// TestTLSListener: an SSL listener beside a plaintext one. A TLS client
// that trusts the CA is served; a plaintext client is not; with
// --tls-client-auth require, a client without a certificate, with an
// expired one or with one from another CA is refused, and one with a
// valid certificate served.
func TestTLSListener(t *testing.T) {
	cs := newCerts(t)
	for _, auth := range []string{"none", "require"} {
		t.Run(auth, func(t *testing.T) {
			b := brokertest.StartBroker(t, func(c *broker.Config) {
				twoListeners(c)
				c.Listeners[1] = "SECURE://127.0.0.1:0"
				c.ListenerSecurityProtocolMap = []string{"SECURE:SSL"}
				c.TLSCert, c.TLSKey, c.TLSCA, c.TLSClientAuth = cs.cert, cs.key, cs.caFile, auth
			})
			addr := b.ListenerAddr("SECURE")
			good := clientCert(t, cs.ca, "alice", time.Now().Add(-time.Minute), time.Hour)
			if err := tlsMetadata(t, addr, &tls.Config{RootCAs: cs.pool(), Certificates: []tls.Certificate{good}}); err != nil {
				t.Fatalf("TLS client with the CA and a certificate: %v", err)
			}
			// Plaintext on the TLS port fails, and does not hang.
			c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := dial(t, addr).Metadata(c, &v1.MetadataRequest{}); err == nil {
				t.Fatal("a plaintext client was served on an SSL listener")
			}
			// The plaintext CLIENT listener stays plaintext.
			if _, err := dial(t, b.APIAddr()).Metadata(ctx(t), &v1.MetadataRequest{}); err != nil {
				t.Fatalf("plaintext CLIENT listener: %v", err)
			}
			if err := tlsMetadata(t, addr, &tls.Config{}); err == nil || !strings.Contains(err.Error(), "certificate") {
				t.Fatalf("TLS client that does not trust the CA: got %v, want a certificate error", err)
			}
			other, err := tlsconfig.NewCA("another CA", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			refused := map[string][]tls.Certificate{
				"no certificate":      nil,
				"expired certificate": {clientCert(t, cs.ca, "old", time.Now().Add(-2*time.Hour), time.Hour)},
				"foreign certificate": {clientCert(t, other, "mallory", time.Now().Add(-time.Minute), time.Hour)},
			}
			for what, certs := range refused {
				err := tlsMetadata(t, addr, &tls.Config{RootCAs: cs.pool(), Certificates: certs})
				switch {
				case auth == "require" && err == nil:
					t.Errorf("%s: served with --tls-client-auth require", what)
				case auth == "none" && err != nil:
					// none asks for no certificate: a client's is not looked at.
					t.Errorf("%s with --tls-client-auth none: %v", what, err)
				}
			}
		})
	}
}

// TestHTTPTLS: --http-tls serves /healthz over TLS and refuses plain HTTP.
func TestHTTPTLS(t *testing.T) {
	cs := newCerts(t)
	b := brokertest.StartBroker(t, func(c *broker.Config) {
		c.HTTPTLS = true
		c.TLSCert, c.TLSKey, c.TLSCA = cs.cert, cs.key, cs.caFile
	})
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cs.pool()}}}
	resp, err := hc.Get("https://" + b.HTTPAddr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok\n" {
		t.Fatalf("https /healthz: %s %q", resp.Status, body)
	}
	resp, err = (&http.Client{Timeout: 5 * time.Second}).Get("http://" + b.HTTPAddr() + "/healthz")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP /healthz answered 200 with --http-tls")
		}
	}
}

// TestBadListenerConfig: each mistake is refused with a message naming
// the flag to fix.
func TestBadListenerConfig(t *testing.T) {
	cases := []struct {
		name string
		set  func(*broker.Config)
		want string
	}{
		{"not a URL", func(c *broker.Config) { c.Listeners = []string{"127.0.0.1:9000"} }, "--listeners"},
		{"bad name", func(c *broker.Config) { c.Listeners = []string{"9X://127.0.0.1:9000"} }, "listener name"},
		{"duplicate name", func(c *broker.Config) { c.Listeners = []string{"A://127.0.0.1:9000", "a://127.0.0.1:9001"} }, "given twice"},
		{"duplicate port", func(c *broker.Config) { c.Listeners = []string{"A://127.0.0.1:9000", "B://0.0.0.0:9000"} }, "port 9000"},
		{"unknown name in map", func(c *broker.Config) {
			c.Listeners = []string{"A://127.0.0.1:9000"}
			c.ListenerSecurityProtocolMap = []string{"B:SSL"}
		}, "--listener-security-protocol-map"},
		{"unknown protocol", func(c *broker.Config) {
			c.Listeners = []string{"A://127.0.0.1:9000"}
			c.ListenerSecurityProtocolMap = []string{"A:TLS"}
		}, "want PLAINTEXT, SSL"},
		{"advertised without listener", func(c *broker.Config) {
			c.Listeners = []string{"A://127.0.0.1:9000"}
			c.AdvertisedListeners = []string{"B://x.example:9000"}
		}, "--advertised-listeners"},
		{"advertised 0.0.0.0", func(c *broker.Config) {
			c.Listeners = []string{"A://0.0.0.0:9000"}
			c.AdvertisedListeners = []string{"A://0.0.0.0:9000"}
		}, "--advertised-listeners"},
		{"SSL without files", func(c *broker.Config) { c.Listeners = []string{"SSL://127.0.0.1:9000"} }, "--tls-cert"},
		{"api-addr and listeners disagree", func(c *broker.Config) {
			c.APIAddr = "127.0.0.1:7000"
			c.Listeners = []string{"CLIENT://127.0.0.1:9000"}
		}, "--api-addr"},
		{"http-tls without files", func(c *broker.Config) { c.HTTPTLS = true }, "--http-tls"},
		{"bad client auth", func(c *broker.Config) { c.TLSClientAuth = "maybe" }, "--tls-client-auth"},
	}
	for _, tc := range cases {
		cfg := broker.DefaultConfig()
		tc.set(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error naming %s", tc.name, err, tc.want)
		}
	}
	// Agreeing --api-addr and --listeners are fine; so is the default.
	cfg := broker.DefaultConfig()
	cfg.Listeners = []string{"CLIENT://127.0.0.1:9000", "EXTERNAL://0.0.0.0:9001"}
	if err := cfg.Validate(); err != nil {
		t.Errorf("default --api-addr with --listeners: %v", err)
	}
	cfg.APIAddr = "127.0.0.1:9000"
	if err := cfg.Validate(); err != nil {
		t.Errorf("--api-addr naming the CLIENT listener: %v", err)
	}
}

// TestTLSListenerReloadsCertificate: a new certificate written over the
// broker's files is presented to new connections without a restart.
func TestTLSListenerReloadsCertificate(t *testing.T) {
	cs := newCerts(t)
	b := brokertest.StartBroker(t, func(c *broker.Config) {
		c.APIAddr = ""
		c.Listeners = []string{"SSL://127.0.0.1:0"}
		c.TLSCert, c.TLSKey, c.TLSCA = cs.cert, cs.key, cs.caFile
	})
	served := func() string {
		conn, err := tls.Dial("tcp", b.APIAddr(), &tls.Config{RootCAs: cs.pool(), ServerName: "127.0.0.1", NextProtos: []string{"h2"}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if cn := served(); cn != "broker" {
		t.Fatalf("served %q, want the first certificate (broker)", cn)
	}
	leaf, err := cs.ca.Issue("broker-renewed", []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := tlsconfig.WriteFiles(leaf.Cert, leaf.Key, cs.cert, cs.key, true); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for served() != "broker-renewed" {
		if time.Now().After(deadline) {
			t.Fatal("the renewed certificate was not served within 10s")
		}
		time.Sleep(50 * time.Millisecond) // the files are checked at most once a second; nothing to wait on
	}
}
