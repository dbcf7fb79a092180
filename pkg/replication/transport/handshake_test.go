package transport

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/stratalog/strata/pkg/tlsconfig"
)

// Inter-broker authentication (handshake.go): peers with the cluster's
// secret or certificate talk; anyone else is closed before a frame is
// read, counted, and never answered.

func secretOpts(secret string) Options {
	return Options{Security: Security{Secret: []byte(secret)}, DialTimeout: time.Second}
}

func listenT(t *testing.T, opts Options) *Mux {
	t.Helper()
	m, err := Listen("127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestSameSecretTalks(t *testing.T) {
	a, b := listenT(t, secretOpts("s3cret")), listenT(t, secretOpts("s3cret"))
	ta := mustTransport(t, a, "g")
	serveRaft(t, mustTransport(t, b, "g"), ackAll)
	var vr raft.RequestVoteResponse
	if err := ta.RequestVote("2", b.Addr(), &raft.RequestVoteRequest{Term: 3}, &vr); err != nil || !vr.Granted {
		t.Fatalf("RequestVote = %+v, %v", vr, err)
	}
	if a.AuthFailures()+b.AuthFailures() != 0 {
		t.Fatalf("auth failures %d, %d", a.AuthFailures(), b.AuthFailures())
	}
}

// A peer with another secret gets no RPC through, and both ends count it.
func TestWrongSecretRefused(t *testing.T) {
	a, b := listenT(t, secretOpts("ours")), listenT(t, secretOpts("theirs"))
	ta := mustTransport(t, a, "g")
	served := make(chan struct{}, 1)
	serveRaft(t, mustTransport(t, b, "g"), func(rpc raft.RPC) { served <- struct{}{}; ackAll(rpc) })
	var vr raft.RequestVoteResponse
	err := ta.RequestVote("2", b.Addr(), &raft.RequestVoteRequest{Term: 3}, &vr)
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("RequestVote with another secret: %v, want ErrAuth", err)
	}
	waitFor(t, 10*time.Second, "both ends count the failure", func() bool { return a.AuthFailures() >= 1 && b.AuthFailures() >= 1 })
	select {
	case <-served:
		t.Fatal("a request from a peer with another secret reached raft")
	default:
	}
	// And the gRPC side: a dial with another secret never reaches Accept.
	if _, err := a.DialContext(context.Background(), string(b.Addr())); !errors.Is(err, ErrAuth) {
		t.Fatalf("gRPC dial with another secret: %v, want ErrAuth", err)
	}
}

// A raw TCP client that sends a hello and a guessed proof, then a request
// frame, gets its connection closed and nothing answered.
func TestRawConnectionWithWrongSecretIsClosed(t *testing.T) {
	b := listenT(t, secretOpts("ours"))
	serveRaft(t, mustTransport(t, b, "g"), ackAll)
	nc, err := net.Dial("tcp", string(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	h := hello{purpose: purposeRaft, addr: "127.0.0.1:1"}
	rand.Read(h.nonce[:])
	nc.Write(appendHello(nil, h))
	var ch [nonceSize + macSize]byte
	if _, err := io.ReadFull(nc, ch[:]); err != nil {
		t.Fatalf("no challenge: %v", err)
	}
	nc.Write(handshakeMAC([]byte("guess"), 'D', h, ch[:nonceSize]))
	req, err := encodePayload(nil, &raft.RequestVoteRequest{Term: 1})
	if err != nil {
		t.Fatal(err)
	}
	fr, err := appendFrame(nil, &frame{kind: kindRequest, id: 1, rpc: rpcRequestVote, group: "g", payload: req}, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	nc.Write(fr)
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := nc.Read(make([]byte, 1))
	if n != 0 || !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("read after a wrong proof: %d bytes, %v; want the connection closed", n, err)
	}
	waitFor(t, 10*time.Second, "the failure counted", func() bool { return b.AuthFailures() == 1 })

	// A bare probe (peerdown.go) is no failure.
	probe, err := net.Dial("tcp", string(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	probe.Close()
	time.Sleep(50 * time.Millisecond) // nothing to wait on: the probe must change nothing
	if b.AuthFailures() != 1 {
		t.Fatalf("a bare probe counted as an auth failure: %d", b.AuthFailures())
	}
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne)
}

// gRPC connections (hello purpose 2) go to Listener, raft ones to raft.
func TestGRPCConnectionsGoToListener(t *testing.T) {
	a, b := listenT(t, secretOpts("s")), listenT(t, secretOpts("s"))
	got := make(chan net.Conn, 1)
	go func() {
		nc, err := b.Listener().Accept()
		if err == nil {
			got <- nc
		}
	}()
	nc, err := a.DialContext(context.Background(), string(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var srv net.Conn
	select {
	case srv = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("accepted gRPC connection not handed to Listener")
	}
	defer srv.Close()
	nc.Write([]byte("PRI * HTTP/2.0"))
	buf := make([]byte, 14)
	if _, err := io.ReadFull(bufio.NewReader(srv), buf); err != nil || string(buf) != "PRI * HTTP/2.0" {
		t.Fatalf("bytes through the handed-over connection: %q, %v", buf, err)
	}
	// A tool without a Mux dials the same way.
	tc, err := DialGRPC(context.Background(), string(b.Addr()), "tool:0", Security{Secret: []byte("s")})
	if err != nil {
		t.Fatal(err)
	}
	tc.Close()
	b.Close()
	if _, err := b.Listener().Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
}

// tlsFiles issues a certificate for hosts from ca and writes it, with the
// CA's, under dir.
func tlsFiles(t testing.TB, ca *tlsconfig.CA, name string, hosts []string) tlsconfig.Files {
	t.Helper()
	dir := t.TempDir()
	leaf, err := ca.Issue(name, hosts, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	f := tlsconfig.Files{Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem"), CA: filepath.Join(dir, "ca.pem")}
	if err := tlsconfig.WriteFiles(leaf.Cert, leaf.Key, f.Cert, f.Key, true); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.CA, tlsconfig.CertPEM(ca.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func tlsOpts(t testing.TB, f tlsconfig.Files) Options {
	t.Helper()
	srv, err := f.Server(tlsconfig.RequireClientCert)
	if err != nil {
		t.Fatal(err)
	}
	return Options{Security: Security{ServerTLS: srv, ClientTLS: f.Client}, DialTimeout: 2 * time.Second}
}

// With TLS, peers with certificates from the cluster's CA naming their
// host talk; a peer whose certificate comes from another CA, or does not
// name its address, is refused.
func TestMutualTLS(t *testing.T) {
	ca, err := tlsconfig.NewCA("cluster", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, err := tlsconfig.NewCA("other", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	local := []string{"127.0.0.1"}
	b := listenT(t, tlsOpts(t, tlsFiles(t, ca, "b", local)))
	serveRaft(t, mustTransport(t, b, "g"), ackAll)

	good := listenT(t, tlsOpts(t, tlsFiles(t, ca, "a", local)))
	var vr raft.RequestVoteResponse
	if err := mustTransport(t, good, "g").RequestVote("2", b.Addr(), &raft.RequestVoteRequest{Term: 3}, &vr); err != nil || !vr.Granted {
		t.Fatalf("RequestVote between brokers of one CA = %+v, %v", vr, err)
	}

	// Another CA's certificate, whose CA file trusts ours (so only our
	// side can refuse it).
	foreign := tlsFiles(t, other, "intruder", local)
	os.WriteFile(foreign.CA, append(tlsconfig.CertPEM(other.Cert), tlsconfig.CertPEM(ca.Cert)...), 0o644)
	intruder := listenT(t, tlsOpts(t, foreign))
	if err := mustTransport(t, intruder, "g").RequestVote("2", b.Addr(), &raft.RequestVoteRequest{Term: 3}, &vr); !errors.Is(err, ErrAuth) {
		t.Fatalf("RequestVote with a foreign CA's certificate: %v, want ErrAuth", err)
	}
	waitFor(t, 10*time.Second, "the foreign certificate counted", func() bool { return b.AuthFailures() >= 1 })

	// Our CA, but a certificate for another host (a client's, say).
	before := b.AuthFailures()
	client := listenT(t, tlsOpts(t, tlsFiles(t, ca, "alice", nil)))
	if err := mustTransport(t, client, "g").RequestVote("2", b.Addr(), &raft.RequestVoteRequest{Term: 3}, &vr); !errors.Is(err, ErrAuth) {
		t.Fatalf("RequestVote with a certificate that does not name the host: %v, want ErrAuth", err)
	}
	waitFor(t, 10*time.Second, "the nameless certificate counted", func() bool { return b.AuthFailures() > before })
}

// Failed handshakes are all counted but logged once per host per minute:
// a peer retrying with the wrong secret does not flood the log.
func TestAuthFailureLogIsRateLimited(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	opts := secretOpts("ours")
	opts.Logger = zap.New(core)
	m := listenT(t, opts)
	for i := range 5 {
		m.authFailed(fmt.Sprintf("10.0.0.7:%d", 40000+i), false, ErrAuth)
	}
	m.authFailed("10.0.0.8:40000", false, ErrAuth)
	if n := logs.FilterMessageSnippet("failed authentication").Len(); n != 2 {
		t.Fatalf("%d warnings for 6 failures from 2 hosts, want 2: %v", n, logs.All())
	}
	if m.AuthFailures() != 6 {
		t.Fatalf("counted %d failures, want 6", m.AuthFailures())
	}
}

// BenchmarkHandshake: the cost of a new authenticated connection on
// loopback (dial, TLS if on, the challenge-response), which a broker pays
// once per pooled connection, not per RPC.
func BenchmarkHandshake(b *testing.B) {
	ca, err := tlsconfig.NewCA("cluster", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts func() Options
	}{
		{"secret", func() Options { return secretOpts("s3cret-s3cret-s3cret") }},
		{"mtls", func() Options { return tlsOpts(b, tlsFiles(b, ca, "a", []string{"127.0.0.1"})) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			srv, err := Listen("127.0.0.1:0", tc.opts())
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			go func() {
				for {
					nc, err := srv.Listener().Accept()
					if err != nil {
						return
					}
					nc.Close()
				}
			}()
			cli, err := Listen("127.0.0.1:0", tc.opts())
			if err != nil {
				b.Fatal(err)
			}
			defer cli.Close()
			b.ResetTimer()
			for range b.N {
				nc, err := cli.DialContext(context.Background(), string(srv.Addr()))
				if err != nil {
					b.Fatal(err)
				}
				nc.Close()
			}
		})
	}
}
