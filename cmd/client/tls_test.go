package main

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/brokertest"
	"github.com/stratalog/strata/pkg/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// runWithEnv runs the CLI with the environment vars and returns its env
// (the parsed global flags) with the result.
func runWithEnv(t *testing.T, vars map[string]string, args ...string) (*env, result) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb,
		getenv: func(k string) string { return vars[k] }, isTerminal: func() bool { return false }}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := run(ctx, e, args)
	return e, result{out.String(), errb.String(), code}
}

// TestTLSFlags: the flags, their STRATA_* variables (overridden by the
// flags), and any file implying TLS.
func TestTLSFlags(t *testing.T) {
	dir := t.TempDir()
	list := []string{"cert", "list", "--certs-dir", dir} // runs the global flags' checks, dials nothing
	for _, tc := range []struct {
		name  string
		vars  map[string]string
		args  []string
		want  tlsFlags
		tls   bool   // client options asked for
		error string // usage error
	}{
		{name: "default plaintext", want: tlsFlags{}},
		{name: "--tls", args: []string{"--tls"}, want: tlsFlags{on: true}, tls: true},
		{name: "a CA implies TLS", args: []string{"--tls-ca", "ca.crt"}, want: tlsFlags{ca: "ca.crt"}, tls: true},
		{name: "env", vars: map[string]string{"STRATA_TLS_CA": "ca.crt", "STRATA_TLS_CERT": "c.crt", "STRATA_TLS_KEY": "c.key", "STRATA_TLS_SERVER_NAME": "strata1"},
			want: tlsFlags{ca: "ca.crt", cert: "c.crt", key: "c.key", serverName: "strata1"}, tls: true},
		{name: "STRATA_TLS", vars: map[string]string{"STRATA_TLS": "true"}, want: tlsFlags{on: true}, tls: true},
		{name: "flags over env", vars: map[string]string{"STRATA_TLS_CA": "env.crt", "STRATA_TLS": "1"}, args: []string{"--tls-ca", "flag.crt", "--tls=false"},
			want: tlsFlags{ca: "flag.crt"}, tls: true},
		{name: "bad STRATA_TLS", vars: map[string]string{"STRATA_TLS": "yes please"}, error: `STRATA_TLS="yes please": want true or false`},
		{name: "cert without key", args: []string{"--tls-cert", "c.crt"}, error: "--tls-cert and --tls-key go together"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, r := runWithEnv(t, tc.vars, append(tc.args, list...)...)
			if tc.error != "" {
				if r.code == 0 || !strings.Contains(r.stderr, tc.error) {
					t.Fatalf("exit %d, stderr %q; want %q", r.code, r.stderr, tc.error)
				}
				return
			}
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			if e.tls != tc.want || (len(e.tls.opts()) > 0) != tc.tls {
				t.Errorf("got %+v (TLS %v), want %+v (TLS %v)", e.tls, len(e.tls.opts()) > 0, tc.want, tc.tls)
			}
		})
	}
}

// startTLSServer serves the Strata API (every method unimplemented) over
// TLS with a certificate for 127.0.0.1 from a new CA; it returns the
// address and the CA file.
func startTLSServer(t *testing.T) (addr, caFile string) {
	t.Helper()
	dir := t.TempDir()
	runCLI(t, "", "", "cert", "create-ca", "--certs-dir", dir).ok(t)
	runCLI(t, "", "", "cert", "create-broker", "127.0.0.1", "--certs-dir", dir).ok(t)
	cfg, err := tlsconfig.Files{Cert: filepath.Join(dir, "broker.crt"), Key: filepath.Join(dir, "broker.key")}.Server(tlsconfig.NoClientCert)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.Creds(credentials.NewTLS(cfg)))
	v1.RegisterStrataServer(s, v1.UnimplementedStrataServer{})
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(lis) }()
	t.Cleanup(func() { s.Stop(); <-done })
	return lis.Addr().String(), filepath.Join(dir, "ca.crt")
}

// TestTLSAdvice: a client and a broker that disagree about TLS, or a CA
// that does not match, get one line saying which flag to change.
func TestTLSAdvice(t *testing.T) {
	tlsAddr, ca := startTLSServer(t)
	plainAddr := brokertest.Start(t)
	other := t.TempDir()
	runCLI(t, "", "", "cert", "create-ca", "--certs-dir", other).ok(t)

	for _, tc := range []struct {
		name, addr string
		args       []string
		want       string
	}{
		{"plaintext to TLS", tlsAddr, nil, "strata: the broker at " + tlsAddr + " expects TLS and this client connects in plaintext: pass --tls-ca with the cluster's CA"},
		{"system roots", tlsAddr, []string{"--tls"}, "strata: TLS handshake with " + tlsAddr + " failed: certificate signed by unknown authority: pass --tls-ca with the cluster's CA"},
		{"another CA", tlsAddr, []string{"--tls-ca", filepath.Join(other, "ca.crt")}, "failed: certificate signed by unknown authority: --tls-ca " + filepath.Join(other, "ca.crt") + " did not sign it"},
		{"TLS to plaintext", plainAddr, []string{"--tls-ca", ca}, "strata: TLS handshake with " + plainAddr + " failed: the broker's port does not speak TLS (plaintext listener): drop --tls"},
		// The right CA gets through TLS to the (unimplemented) API.
		{"right CA", tlsAddr, []string{"--tls-ca", ca}, "strata: the broker does not support this command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			r := runCLI(t, tc.addr, "", append(tc.args, "topic", "list")...)
			if r.code == 0 || !strings.HasPrefix(r.stderr, tc.want) && !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want %q", r.code, r.stderr, tc.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %s: TLS errors must not be retried", d)
			}
		})
	}
}
