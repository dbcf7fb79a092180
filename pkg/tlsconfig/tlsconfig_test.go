package tlsconfig

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pki writes a CA and a leaf it signed into dir and returns their Files.
func pki(t *testing.T, dir, name string, hosts []string, notBefore time.Time, validity time.Duration) (*CA, Files) {
	t.Helper()
	ca, err := NewCA(name+"-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	f := writeLeaf(t, ca, dir, name, hosts, notBefore, validity)
	return ca, f
}

func writeLeaf(t *testing.T, ca *CA, dir, name string, hosts []string, notBefore time.Time, validity time.Duration) Files {
	t.Helper()
	leaf, err := ca.IssueAt(name, hosts, notBefore, validity)
	if err != nil {
		t.Fatal(err)
	}
	f := Files{Cert: filepath.Join(dir, name+".crt"), Key: filepath.Join(dir, name+".key"), CA: filepath.Join(dir, name+"-ca.crt")}
	if err := WriteFiles(leaf.Cert, leaf.Key, f.Cert, f.Key, true); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.CA, CertPEM(ca.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// serve accepts TLS connections on loopback until the test ends, answering
// each with the principal it sees.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := c.(*tls.Conn)
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if err := tc.Handshake(); err != nil {
					return
				}
				p, ok := Principal(tc.ConnectionState())
				if !ok {
					p = "anonymous"
				}
				io.WriteString(c, p+"\n")
			}()
		}
	}()
	return ln.Addr().String()
}

func dial(addr string, cfg *tls.Config) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d := tls.Dialer{Config: cfg}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		return "", err
	}
	if len(b) == 0 {
		return "", errors.New("server closed the connection")
	}
	return strings.TrimSpace(string(b)), nil
}

func TestMutualTLSAndPrincipal(t *testing.T) {
	dir := t.TempDir()
	ca, srvFiles := pki(t, dir, "broker", []string{"127.0.0.1", "localhost"}, time.Now().Add(-time.Minute), time.Hour)
	cliFiles := writeLeaf(t, ca, dir, "alice", nil, time.Now().Add(-time.Minute), time.Hour)
	srv, err := srvFiles.Server(RequireClientCert)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, srv)

	cli, err := cliFiles.Client("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if p, err := dial(addr, cli); err != nil || p != "User:alice" {
		t.Fatalf("mutual TLS: principal %q, err %v; want User:alice", p, err)
	}

	// No client certificate: refused.
	anon, err := Files{CA: cliFiles.CA}.Client("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if p, err := dial(addr, anon); err == nil {
		t.Fatalf("a client without a certificate was served (%q)", p)
	}

	// A certificate from another CA: refused.
	_, foreign := pki(t, t.TempDir(), "mallory", nil, time.Now().Add(-time.Minute), time.Hour)
	foreign.CA = cliFiles.CA
	fc, err := foreign.Client("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if p, err := dial(addr, fc); err == nil {
		t.Fatalf("a client with a foreign certificate was served (%q)", p)
	}

	// An expired client certificate: refused.
	expired := writeLeaf(t, ca, t.TempDir(), "old", nil, time.Now().Add(-2*time.Hour), time.Hour)
	ec, err := expired.Client("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if p, err := dial(addr, ec); err == nil {
		t.Fatalf("a client with an expired certificate was served (%q)", p)
	}

	// The client refuses a server its CA did not sign.
	_, other := pki(t, t.TempDir(), "imposter", []string{"127.0.0.1"}, time.Now().Add(-time.Minute), time.Hour)
	osrv, err := other.Server(NoClientCert)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dial(serve(t, osrv), cli); err == nil || !strings.Contains(err.Error(), "not trusted") {
		t.Fatalf("client accepted a server from another CA: %v", err)
	}
}

func TestRequestClientCertServesAnonymous(t *testing.T) {
	dir := t.TempDir()
	_, srvFiles := pki(t, dir, "broker", []string{"127.0.0.1"}, time.Now().Add(-time.Minute), time.Hour)
	srv, err := srvFiles.Server(RequestClientCert)
	if err != nil {
		t.Fatal(err)
	}
	anon, err := Files{CA: srvFiles.CA}.Client("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if p, err := dial(serve(t, srv), anon); err != nil || p != "anonymous" {
		t.Fatalf("got %q, %v; want anonymous", p, err)
	}
}

// A certificate replaced on disk is served at the next handshake (a second
// later at most; the test checks every time), with no restart; a broken replacement keeps the old one.
func TestReloadOnChange(t *testing.T) {
	defer func(d time.Duration) { reloadEvery = d }(reloadEvery)
	reloadEvery = 0
	dir := t.TempDir()
	ca, srvFiles := pki(t, dir, "broker", []string{"127.0.0.1"}, time.Now().Add(-time.Minute), time.Hour)
	var reloadErrs []error
	srvFiles.OnError = func(err error) { reloadErrs = append(reloadErrs, err) }
	srv, err := srvFiles.Server(NoClientCert)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, srv)
	serial := func() string {
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	first := serial()
	writeLeaf(t, ca, dir, "broker", []string{"127.0.0.1"}, time.Now().Add(-time.Minute), time.Hour)
	second := serial()
	if second == first {
		t.Fatal("the replaced certificate was not served at the next handshake")
	}
	if err := os.WriteFile(srvFiles.Cert, []byte("half written"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := serial(); got != second {
		t.Fatalf("a broken certificate file replaced the good one (%s, want %s)", got, second)
	}
	if len(reloadErrs) == 0 {
		t.Fatal("a broken certificate file was not reported")
	}
}

func TestFilesChecks(t *testing.T) {
	if _, err := (Files{Cert: "x"}).Server(NoClientCert); err == nil || !strings.Contains(err.Error(), "--tls-key") {
		t.Fatalf("cert without key: %v", err)
	}
	if _, err := (Files{Cert: "x", Key: "y"}).Server(RequireClientCert); err == nil || !strings.Contains(err.Error(), "--tls-ca") {
		t.Fatalf("require without CA: %v", err)
	}
	if _, err := ParseClientAuth("sometimes"); err == nil {
		t.Fatal("bad client auth accepted")
	}
	var _ net.Conn
}

// A server certificate the CA signed for another host is refused when the
// client dials an IP address: SNI carries no IPs, so crypto/tls leaves the
// connection state's ServerName empty and x509 would skip the name check.
func TestClientChecksServerNameForIPs(t *testing.T) {
	dir := t.TempDir()
	ca, srvFiles := pki(t, dir, "strata1", []string{"strata1"}, time.Now().Add(-time.Minute), time.Hour)
	srv, err := srvFiles.Server(NoClientCert)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, srv)
	for _, name := range []string{"127.0.0.1", ""} {
		cli, err := Files{CA: srvFiles.CA}.Client(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dial(addr, cli); err == nil {
			t.Errorf("server name %q: a certificate for strata1 was accepted for 127.0.0.1", name)
		}
	}
	good := writeLeaf(t, ca, dir, "strata1b", []string{"strata1", "127.0.0.1"}, time.Now().Add(-time.Minute), time.Hour)
	gsrv, err := good.Server(NoClientCert)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := Files{CA: srvFiles.CA}.Client("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dial(serve(t, gsrv), cli); err != nil {
		t.Fatalf("a certificate for 127.0.0.1: %v", err)
	}
}
