package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalog/strata/internal/brokertest"
	"github.com/stratalog/strata/pkg/broker"
)

// TestTLSEndToEnd: certificates made by strata cert, a broker with a TLS
// listener, and the CLI producing and consuming through it; without the
// CA, or without a client certificate where one is required, the CLI says
// which flag is missing.
func TestTLSEndToEnd(t *testing.T) {
	dir := t.TempDir()
	runCLI(t, "", "", "cert", "create-ca", "--certs-dir", dir).ok(t)
	runCLI(t, "", "", "cert", "create-broker", "localhost", "127.0.0.1", "--certs-dir", dir).ok(t)
	runCLI(t, "", "", "cert", "create-client", "alice", "--certs-dir", dir).ok(t)
	ca := filepath.Join(dir, "ca.crt")
	client := []string{"--tls-cert", filepath.Join(dir, "client.alice.crt"), "--tls-key", filepath.Join(dir, "client.alice.key")}

	tlsBroker := func(clientAuth string) string {
		b := brokertest.StartBroker(t, func(c *broker.Config) {
			c.APIAddr = ""
			c.Listeners = []string{"SSL://127.0.0.1:0"}
			c.TLSCert, c.TLSKey, c.TLSCA = filepath.Join(dir, "broker.crt"), filepath.Join(dir, "broker.key"), ca
			c.TLSClientAuth = clientAuth
			// With client certificates required, ACLs apply (--authorizer
			// auto); this test is about TLS, so alice may do anything.
			c.SuperUsers = []string{"User:alice"}
		})
		return b.ListenerAddr("SSL")
	}
	addr := tlsBroker("none")

	runCLI(t, addr, "", "--tls-ca", ca, "topic", "create", "secure", "-p", "2").ok(t)
	r := runCLI(t, addr, "one\ntwo\nthree\n", "--tls-ca", ca, "produce", "secure").ok(t)
	if !strings.Contains(r.stderr, "produced 3 records") {
		t.Errorf("produce: %q", r.stderr)
	}
	r = runCLI(t, addr, "", "--tls-ca", ca, "consume", "secure", "-n", "3", "-f", "%v\n").ok(t)
	if got := strings.Fields(r.stdout); len(got) != 3 {
		t.Errorf("consumed %q", r.stdout)
	}

	r = runCLI(t, addr, "", "topic", "list")
	if want := "strata: the broker at " + addr + " expects TLS and this client connects in plaintext: pass --tls-ca"; !strings.HasPrefix(r.stderr, want) {
		t.Errorf("plaintext client: %q, want %q", r.stderr, want)
	}
	r = runCLI(t, addr, "", "--tls", "topic", "list")
	if want := "strata: TLS handshake with " + addr + " failed: certificate signed by unknown authority: pass --tls-ca with the cluster's CA"; !strings.HasPrefix(r.stderr, want) {
		t.Errorf("no CA: %q, want %q", r.stderr, want)
	}

	// Mutual TLS: the client certificate strata cert made gets in; no
	// certificate is told to pass one.
	maddr := tlsBroker("require")
	mtls := append([]string{"--tls-ca", ca}, client...)
	runCLI(t, maddr, "", append(mtls, "topic", "create", "m")...).ok(t)
	runCLI(t, maddr, "x\n", append(mtls, "produce", "m")...).ok(t)
	if r = runCLI(t, maddr, "", append(mtls, "consume", "m", "-n", "1", "-f", "%v")...).ok(t); r.stdout != "x" {
		t.Errorf("consume over mutual TLS: %q", r.stdout)
	}
	r = runCLI(t, maddr, "", "--tls-ca", ca, "topic", "list")
	if want := "strata: TLS handshake with " + maddr + " failed: the broker requires a client certificate: pass --tls-cert and --tls-key"; !strings.HasPrefix(r.stderr, want) {
		t.Errorf("no client certificate: %q, want %q", r.stderr, want)
	}
}
