package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/brokertest"
	"github.com/stratalog/strata/pkg/broker"
	"github.com/stratalog/strata/pkg/tlsconfig"
)

// healthcheck runs `strata-broker healthcheck args...` through the root
// command, as the binary would, and returns its error.
func healthcheck(t *testing.T, args ...string) error {
	t.Helper()
	cmd := newRootCmd(func(context.Context, broker.Config) error {
		t.Fatal("healthcheck started a broker")
		return nil
	})
	cmd.SetArgs(append([]string{"healthcheck"}, args...))
	cmd.SetOut(&strings.Builder{})
	cmd.SetErr(&strings.Builder{})
	return cmd.Execute()
}

func TestHealthcheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/readyz":
			http.Error(w, "not ready", http.StatusServiceUnavailable)
		case "/healthz":
			w.Write([]byte("ok\n"))
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()

	// A port nothing listens on: bind one, note it, close it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string // "" = exit 0
	}{
		{"ok", []string{"--url", srv.URL + "/healthz"}, ""},
		{"503 with the reason", []string{"--url", srv.URL + "/readyz"}, "503 Service Unavailable: not ready"},
		{"404", []string{"--url", srv.URL + "/nope"}, "404"},
		{"nothing listening", []string{"--url", "http://" + closed + "/readyz"}, "connection refused"},
		{"timeout", []string{"--url", srv.URL + "/slow", "--timeout", "100ms"}, "deadline exceeded"},
		{"bad url", []string{"--url", "://x"}, "--url"},
		{"bad timeout", []string{"--url", srv.URL + "/healthz", "--timeout", "0s"}, "--timeout must be positive"},
		{"no arguments", []string{"extra"}, "unknown command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := healthcheck(t, tc.args...)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("healthcheck %v: %v, want success", tc.args, err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("healthcheck %v succeeded, want an error containing %q", tc.args, tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("healthcheck %v: %v, want an error containing %q", tc.args, err, tc.wantErr)
			}
		})
	}
}

// The default URL is a broker's default --http-addr, which is also where a
// broker listening on 0.0.0.0:9291 answers inside its container.
func TestHealthcheckDefaultURL(t *testing.T) {
	if got, want := defaultHealthURL, "http://"+broker.DefaultConfig().HTTPAddr+"/readyz"; got != want {
		t.Fatalf("default --url %s, want %s", got, want)
	}
}

// TestHealthcheckHTTPTLS: the probe works against a broker with
// --http-tls given the CA (a loopback URL checks the chain, not the name),
// and says what to pass without it.
func TestHealthcheckHTTPTLS(t *testing.T) {
	dir := t.TempDir()
	ca, err := tlsconfig.NewCA("healthcheck CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	caFile, cert, key := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "broker.crt"), filepath.Join(dir, "broker.key")
	if err := os.WriteFile(caFile, tlsconfig.CertPEM(ca.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue("strata1", []string{"strata1"}, time.Hour) // names no loopback host
	if err != nil {
		t.Fatal(err)
	}
	if err := tlsconfig.WriteFiles(leaf.Cert, leaf.Key, cert, key, false); err != nil {
		t.Fatal(err)
	}
	b := brokertest.StartBroker(t, func(c *broker.Config) {
		c.HTTPTLS, c.TLSCert, c.TLSKey = true, cert, key
	})
	url := "https://" + b.HTTPAddr() + "/readyz"
	if err := healthcheck(t, "--url", url, "--tls-ca", caFile); err != nil {
		t.Fatalf("healthcheck with --tls-ca: %v", err)
	}
	if err := healthcheck(t, "--url", url); err == nil || !strings.Contains(err.Error(), "--tls-ca") {
		t.Fatalf("healthcheck without the CA: got %v, want advice to pass --tls-ca", err)
	}
	if err := healthcheck(t, "--url", url, "--tls-ca", caFile, "--tls-server-name", "strata2"); err == nil {
		t.Fatal("healthcheck accepted a certificate for another name")
	}
	if err := healthcheck(t, "--url", "http://"+b.HTTPAddr()+"/readyz"); err == nil {
		t.Fatal("plain HTTP probe of a TLS listener succeeded")
	}
}
