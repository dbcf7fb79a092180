package client

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/pkg/apierr"
)

// TestUnreachableCauses: each way an address can fail to be a broker is
// named, with the address, and FailFast gives up at once on the final
// ones instead of retrying for RetryTimeout.
func TestUnreachableCauses(t *testing.T) {
	// An HTTP server where the API should be.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	// A port nothing listens on.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()

	for _, tc := range []struct {
		addr  string
		cause UnreachableCause
	}{
		{deadAddr, CauseRefused},
		{"nosuchhost.invalid:9290", CauseNoSuchHost},
		{ln.Addr().String(), CauseNotStrata},
	} {
		c, err := New([]string{tc.addr}, FailFast(), RetryTimeout(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		start := time.Now()
		_, err = c.Admin().ListTopics(ctx)
		took := time.Since(start)
		cancel()
		c.Close()
		var ue *UnreachableError
		if !errors.As(err, &ue) || ue.Cause != tc.cause || ue.Addr != tc.addr || !strings.Contains(err.Error(), tc.addr) {
			t.Errorf("%s: %v, want cause %q", tc.addr, err, tc.cause)
			continue
		}
		if took > 10*time.Second {
			t.Errorf("%s: FailFast took %v (RetryTimeout 1m)", tc.addr, took)
		}
		if tc.cause != CauseNotStrata && !errors.Is(err, apierr.ErrUnavailable) {
			t.Errorf("%s: %v does not unwrap to UNAVAILABLE", tc.addr, err)
		}
	}

	// Without FailFast a refusal is retried until RetryTimeout.
	c, err := New([]string{deadAddr}, RetryTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_, err = c.Admin().ListTopics(context.Background())
	if took := time.Since(start); took < 900*time.Millisecond {
		t.Errorf("without FailFast gave up after %v, before RetryTimeout (1s): %v", took, err)
	}
}

func TestBadBrokerAddresses(t *testing.T) {
	for addr, want := range map[string]string{
		"http://127.0.0.1:9290": "is a URL",
		"127.0.0.1":             "has no port",
		"localhost:":            "has no port",
	} {
		if _, err := New([]string{addr}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New(%q): %v, want %q", addr, err, want)
		}
	}
}

// TestUnreachableSilent: an address that accepts connections and never
// answers (a paused broker, a proxy holding the port) is "timed out", not
// "not a Strata API": gRPC reports it as a failed preface read after its
// connect timeout, which once read as a wrong answer.
func TestUnreachableSilent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn // only the accepting goroutine touches it until done
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, conn) // hold it open, say nothing
		}
	}()
	defer func() {
		ln.Close()
		<-done
		for _, conn := range held {
			conn.Close()
		}
	}()

	addr := ln.Addr().String()
	c, err := New([]string{addr}, FailFast(), RetryTimeout(6*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Admin().ListTopics(context.Background())
	var ue *UnreachableError
	if err == nil || strings.Contains(err.Error(), string(CauseNotStrata)) || (errors.As(err, &ue) && ue.Cause != CauseTimedOut) {
		t.Fatalf("silent peer at %s: %v, want no answer (%q)", addr, err, CauseTimedOut)
	}
}

// TestUnreachableNamesEveryAddress: when FailFast gives up on a broker
// list whose every address failed for good, the error names each address
// with its cause, not only the last one tried.
func TestUnreachableNamesEveryAddress(t *testing.T) {
	var dead []string
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		dead = append(dead, ln.Addr().String())
		ln.Close()
	}
	addrs := append(dead, "nosuchhost.invalid:9290")
	c, err := New(addrs, FailFast(), RetryTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = c.Admin().ListTopics(ctx)
	var ue *UnreachableError
	if !errors.As(err, &ue) || len(ue.Others) != len(addrs)-1 {
		t.Fatalf("%v: want an UnreachableError naming the %d other addresses", err, len(addrs)-1)
	}
	for _, a := range addrs {
		if !strings.Contains(err.Error(), a) {
			t.Errorf("%v does not name %s", err, a)
		}
	}
	if !strings.Contains(err.Error(), string(CauseNoSuchHost)) || !strings.Contains(err.Error(), string(CauseRefused)) {
		t.Errorf("%v does not give each address's cause", err)
	}
}
