package client

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/pkg/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// testPKI is a CA and the files of the certificates it issued, in a
// temporary directory.
type testPKI struct {
	t   *testing.T
	dir string
	ca  *tlsconfig.CA
	caf string // the CA's certificate file
}

func newTestPKI(t *testing.T, name string) *testPKI {
	t.Helper()
	ca, err := tlsconfig.NewCA(name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{t: t, dir: t.TempDir(), ca: ca}
	p.caf = filepath.Join(p.dir, "ca.crt")
	if err := os.WriteFile(p.caf, tlsconfig.CertPEM(ca.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// issue writes a certificate for name and hosts, valid from notBefore for
// validity, and returns its files with the CA.
func (p *testPKI) issue(name string, hosts []string, notBefore time.Time, validity time.Duration) tlsconfig.Files {
	p.t.Helper()
	leaf, err := p.ca.IssueAt(name, hosts, notBefore, validity)
	if err != nil {
		p.t.Fatal(err)
	}
	f := tlsconfig.Files{Cert: filepath.Join(p.dir, name+".crt"), Key: filepath.Join(p.dir, name+".key"), CA: p.caf}
	if err := tlsconfig.WriteFiles(leaf.Cert, leaf.Key, f.Cert, f.Key, true); err != nil {
		p.t.Fatal(err)
	}
	return f
}

// startTLSFake starts a fake broker serving TLS with files and auth.
func startTLSFake(t *testing.T, files tlsconfig.Files, auth tlsconfig.ClientAuth) *fakeBroker {
	t.Helper()
	cfg, err := files.Server(auth)
	if err != nil {
		t.Fatal(err)
	}
	return startFakeWith(t, grpc.Creds(credentials.NewTLS(cfg)))
}

var loopback = []string{"localhost", "127.0.0.1"}

// TestTLSProduceAndConsume: with the cluster's CA the client produces and
// consumes over TLS, through the seed and through the address metadata
// gives (127.0.0.1 here, the seed being localhost).
func TestTLSProduceAndConsume(t *testing.T) {
	p := newTestPKI(t, "ca")
	f := startTLSFake(t, p.issue("broker", loopback, time.Now().Add(-time.Minute), time.Hour), tlsconfig.NoClientCert)
	f.mu.Lock()
	f.host = "127.0.0.1"
	f.mu.Unlock()
	_, port, _ := net.SplitHostPort(f.addr)
	c := newTestClient(t, net.JoinHostPort("localhost", port), TLSFiles(tlsconfig.Files{CA: p.caf}, ""))
	createTopic(t, c, "t", 1)
	pr := c.NewProducer()
	defer pr.Close(testCtx(t))
	if err := pr.ProduceSync(testCtx(t), &Record{Topic: "t", Value: []byte("secret")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cs, err := c.NewConsumer("t", StartAt(Earliest()))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	recs, err := cs.Poll(testCtx(t))
	if err != nil || len(recs) != 1 || string(recs[0].Value) != "secret" {
		t.Fatalf("poll: %v %v", recs, err)
	}
	c.mu.Lock()
	var addrs []string
	for a := range c.mu.conns {
		addrs = append(addrs, a)
	}
	c.mu.Unlock()
	if len(addrs) != 2 {
		t.Errorf("connections to %v; want the seed and the advertised address, both over TLS", addrs)
	}
}

// TestTLSErrors: each way TLS can fail between a client and a broker gives
// a *TLSError of its kind, at once (no retry helps), with a message that
// says what happened.
func TestTLSErrors(t *testing.T) {
	p := newTestPKI(t, "ca")
	other := newTestPKI(t, "other-ca")
	now := time.Now()
	good := p.issue("broker", loopback, now.Add(-time.Minute), time.Hour)
	client := p.issue("alice", nil, now.Add(-time.Minute), time.Hour)
	foreign := other.issue("mallory", nil, now.Add(-time.Minute), time.Hour)

	tlsFake := startTLSFake(t, good, tlsconfig.NoClientCert).addr
	mtlsFake := startTLSFake(t, good, tlsconfig.RequireClientCert).addr
	plainFake := startFake(t).addr
	wrongName := startTLSFake(t, p.issue("strata1", []string{"strata1"}, now.Add(-time.Minute), time.Hour), tlsconfig.NoClientCert).addr
	expired := startTLSFake(t, p.issue("old", loopback, now.Add(-2*time.Hour), time.Hour), tlsconfig.NoClientCert).addr

	for _, tc := range []struct {
		name string
		addr string
		opt  Opt // nil: plaintext
		kind TLSErrorKind
		msg  string
	}{
		{"no CA", tlsFake, TLSFiles(tlsconfig.Files{}, ""), TLSUnknownAuthority, "certificate signed by unknown authority"},
		{"foreign CA", tlsFake, TLSFiles(tlsconfig.Files{CA: other.caf}, ""), TLSUnknownAuthority, "certificate signed by unknown authority"},
		{"wrong name", wrongName, TLSFiles(tlsconfig.Files{CA: p.caf}, ""), TLSWrongName, "the broker's certificate is for strata1, not 127.0.0.1"},
		{"expired", expired, TLSFiles(tlsconfig.Files{CA: p.caf}, ""), TLSExpired, "the broker's certificate expired at"},
		{"no client cert", mtlsFake, TLSFiles(tlsconfig.Files{CA: p.caf}, ""), TLSClientCertRequired, "the broker requires a client certificate"},
		{"foreign client cert", mtlsFake, TLSFiles(tlsconfig.Files{CA: p.caf, Cert: foreign.Cert, Key: foreign.Key}, ""), TLSClientCertRejected, "refused the client certificate: unknown certificate authority"},
		{"plaintext to TLS", tlsFake, nil, TLSRequired, "expects TLS and this client connects in plaintext"},
		{"TLS to plaintext", plainFake, TLSFiles(tlsconfig.Files{CA: p.caf}, ""), TLSNotSpoken, "does not speak TLS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []Opt
			if tc.opt != nil {
				opts = append(opts, tc.opt)
			}
			c := newTestClient(t, tc.addr, opts...) // RetryTimeout 5s
			start := time.Now()
			_, err := c.Admin().ListTopics(testCtx(t))
			var te *TLSError
			if !errors.As(err, &te) {
				t.Fatalf("got %v; want a *TLSError", err)
			}
			if te.Kind != tc.kind || te.Addr != tc.addr || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("got kind %d at %s: %q; want kind %d at %s saying %q", te.Kind, te.Addr, err, tc.kind, tc.addr, tc.msg)
			}
			t.Log(err)
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %s: a TLS error must not be retried", d)
			}
		})
	}

	// The right client certificate is let in.
	c := newTestClient(t, mtlsFake, TLSFiles(client, ""))
	if _, err := c.Admin().ListTopics(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}

// TestTLSOptions: bad TLS options fail New with a message naming them.
func TestTLSOptions(t *testing.T) {
	if _, err := New([]string{"x:1"}, TLS(nil)); err == nil || !strings.Contains(err.Error(), "TLS: nil config") {
		t.Errorf("TLS(nil): %v", err)
	}
	_, err := New([]string{"x:1"}, TLSFiles(tlsconfig.Files{CA: filepath.Join(t.TempDir(), "missing.crt")}, ""))
	if err == nil || !strings.Contains(err.Error(), "--tls-ca") {
		t.Errorf("missing CA file: %v", err)
	}
	_, err = New([]string{"x:1"}, TLSFiles(tlsconfig.Files{Cert: "a.crt"}, ""))
	if err == nil || !strings.Contains(err.Error(), "--tls-cert and --tls-key go together") {
		t.Errorf("cert without key: %v", err)
	}
}
