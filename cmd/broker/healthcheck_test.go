package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/pkg/broker"
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
