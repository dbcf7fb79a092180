package main

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != want {
		t.Errorf("%s: mode %v, want %v", path, st.Mode().Perm(), want)
	}
}

// TestCertCommands: create-ca, create-broker and create-client write a CA
// and certificates that verify against it for their hosts and uses, keys
// 0600; existing files are kept unless --overwrite; list shows them.
func TestCertCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	r := runCLI(t, "", "", "cert", "create-ca", "--certs-dir", dir).ok(t)
	if !strings.Contains(r.stdout, "next: a certificate per broker") || !strings.Contains(r.stdout, "strata cert create-broker HOST... --certs-dir "+dir) {
		t.Errorf("create-ca output does not say the next step: %q", r.stdout)
	}
	ca := readCert(t, filepath.Join(dir, "ca.crt"))
	if !ca.IsCA || ca.NotAfter.Before(time.Now().Add(9*365*24*time.Hour)) {
		t.Errorf("CA: IsCA %v, expires %s; want a CA for 10 years", ca.IsCA, ca.NotAfter)
	}
	checkMode(t, filepath.Join(dir, "ca.key"), 0o600)
	roots := x509.NewCertPool()
	roots.AddCert(ca)

	r = runCLI(t, "", "", "cert", "create-broker", "localhost", "127.0.0.1", "--certs-dir", dir, "--lifetime", "24h").ok(t)
	if !strings.Contains(r.stdout, "--tls-cert "+filepath.Join(dir, "broker.crt")) || !strings.Contains(r.stdout, "strata --tls-ca "+filepath.Join(dir, "ca.crt")) {
		t.Errorf("create-broker output does not give the broker and client flags: %q", r.stdout)
	}
	broker := readCert(t, filepath.Join(dir, "broker.crt"))
	checkMode(t, filepath.Join(dir, "broker.key"), 0o600)
	for _, host := range []string{"localhost", "127.0.0.1"} {
		if _, err := broker.Verify(x509.VerifyOptions{Roots: roots, DNSName: host}); err != nil {
			t.Errorf("broker certificate for %s: %v", host, err)
		}
	}
	if _, err := broker.Verify(x509.VerifyOptions{Roots: roots, DNSName: "strata2"}); err == nil {
		t.Error("broker certificate verifies for a host it was not made for")
	}
	if d := time.Until(broker.NotAfter); d < 23*time.Hour || d > 25*time.Hour {
		t.Errorf("--lifetime 24h: expires in %s", d)
	}

	runCLI(t, "", "", "cert", "create-broker", "strata1", "--name", "strata1", "--certs-dir", dir).ok(t)
	if c := readCert(t, filepath.Join(dir, "broker.strata1.crt")); c.Subject.CommonName != "strata1" || len(c.DNSNames) != 1 || c.DNSNames[0] != "strata1" {
		t.Errorf("--name strata1: subject %q, SANs %v", c.Subject.CommonName, c.DNSNames)
	}

	r = runCLI(t, "", "", "cert", "create-client", "alice", "--certs-dir", dir).ok(t)
	if !strings.Contains(r.stdout, "User:alice") || !strings.Contains(r.stdout, "--tls-cert "+filepath.Join(dir, "client.alice.crt")+" --tls-key "+filepath.Join(dir, "client.alice.key")) {
		t.Errorf("create-client output: %q", r.stdout)
	}
	alice := readCert(t, filepath.Join(dir, "client.alice.crt"))
	checkMode(t, filepath.Join(dir, "client.alice.key"), 0o600)
	if _, err := alice.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil || alice.Subject.CommonName != "alice" {
		t.Errorf("client certificate: %q, %v", alice.Subject.CommonName, err)
	}

	// Refusing to overwrite, before writing anything.
	before, _ := os.ReadFile(filepath.Join(dir, "ca.key"))
	r = runCLI(t, "", "", "cert", "create-ca", "--certs-dir", dir)
	if r.code == 0 || !strings.Contains(r.stderr, "exists: pass --overwrite to replace it") {
		t.Errorf("create-ca over an existing CA: %d %q", r.code, r.stderr)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "ca.key")); string(after) != string(before) {
		t.Error("a refused create-ca changed ca.key")
	}
	os.Remove(filepath.Join(dir, "client.alice.key")) // the certificate alone still blocks
	r = runCLI(t, "", "", "cert", "create-client", "alice", "--certs-dir", dir)
	if r.code == 0 || !strings.Contains(r.stderr, "client.alice.crt exists") {
		t.Errorf("create-client over an existing certificate: %d %q", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "client.alice.key")); err == nil {
		t.Error("a refused create-client wrote a key")
	}
	runCLI(t, "", "", "cert", "create-client", "alice", "--certs-dir", dir, "--overwrite").ok(t)
	if readCert(t, filepath.Join(dir, "client.alice.crt")).SerialNumber.Cmp(alice.SerialNumber) == 0 {
		t.Error("--overwrite kept the old certificate")
	}

	// A lifetime past the CA's is refused.
	r = runCLI(t, "", "", "cert", "create-client", "bob", "--certs-dir", dir, "--lifetime", "100000h")
	if r.code == 0 || !strings.Contains(r.stderr, "outlives the CA") {
		t.Errorf("--lifetime past the CA: %d %q", r.code, r.stderr)
	}

	r = runCLI(t, "", "", "cert", "list", "--certs-dir", dir).ok(t)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "FILE") || !strings.Contains(r.stdout, "localhost,127.0.0.1") || !strings.Contains(r.stdout, "Strata CA") {
		t.Errorf("list:\n%s", r.stdout)
	}
	r = runCLI(t, "", "", "cert", "list", "--certs-dir", dir, "-o", "json").ok(t)
	var list []certInfo
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 4 {
		t.Fatalf("list -o json: %v\n%s", err, r.stdout)
	}
	if list[0].File != "broker.crt" || list[0].Subject != "localhost" || strings.Join(list[0].SANs, ",") != "localhost,127.0.0.1" || list[0].Issuer != "Strata CA" {
		t.Errorf("list -o json: %+v", list[0])
	}
}

// TestCertNeedsCA: issuing without a CA says how to make one.
func TestCertNeedsCA(t *testing.T) {
	dir := t.TempDir()
	r := runCLI(t, "", "", "cert", "create-broker", "localhost", "--certs-dir", dir)
	if r.code == 0 || !strings.Contains(r.stderr, "strata cert create-ca --certs-dir "+dir) {
		t.Errorf("%d %q", r.code, r.stderr)
	}
	r = runCLI(t, "", "", "cert", "create-broker", "--certs-dir", dir)
	if r.code == 0 || !strings.Contains(r.stderr, "needs the hosts") {
		t.Errorf("no hosts: %d %q", r.code, r.stderr)
	}
}
