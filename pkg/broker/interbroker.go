package broker

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/replication/transport"
	"github.com/stratalog/strata/pkg/tlsconfig"
)

// The inter-broker listener (--raft-addr) and how brokers prove to each
// other that they belong to one cluster (issue 12).
//
// One port carries every broker-to-broker byte: the Raft traffic of every
// group, and the internal gRPC service (ApplyMetadata, ChangeReplicas,
// ReadLog, ReplicaStatus, ...), which the client API does not serve. The
// transport's handshake (replication/transport/handshake.go) demultiplexes
// the two after authenticating the connection both ways:
//
//   - inter-broker TLS on (--tls-cert, --tls-key and --tls-ca all given):
//     mutual TLS, each end's certificate signed by --tls-ca and naming the
//     host of its advertised --raft-addr;
//   - always: a challenge-response proving the cluster secret (HMAC-SHA256
//     over both ends' nonces, the direction and the dialer's address; the
//     secret never crosses the wire). With TLS and no secret it is the
//     empty key: TLS alone decides.
//
// Secret policy: --cluster-secret or --cluster-secret-file (the same on
// every broker). A broker started alone (no --join, --bootstrap-expect 0
// or 1) without one, and without inter-broker TLS, generates a random
// secret into <data-dir>/cluster-secret (mode 0600) and keeps using it, so
// that `strata-broker` with no flags needs no set-up. A broker that joins
// or expects others refuses to start without a secret or inter-broker TLS
// (Config.Validate). Gossip is encrypted with --gossip-key, or else with a
// key derived from the secret.

// secretFileName is the generated secret of a broker started alone.
const secretFileName = "cluster-secret"

// minSecretLen is the shortest cluster secret accepted.
const minSecretLen = 16

// interbrokerTLS reports whether brokers talk to each other over mutual
// TLS: a certificate, its key and the CA that signs every broker's.
func (c Config) interbrokerTLS() bool {
	return c.TLSCert != "" && c.TLSKey != "" && c.TLSCA != ""
}

// alone reports whether the broker is started as a single-node cluster.
func (c Config) alone() bool { return len(c.Join) == 0 && c.Expect() == 1 }

// validateInterbroker is Validate's part for the inter-broker listener
// and gossip.
func (c Config) validateInterbroker() error {
	if c.ClusterSecret != "" && c.ClusterSecretFile != "" {
		return errors.New("--cluster-secret and --cluster-secret-file (or their STRATA_ variables) both given: give one")
	}
	if c.ClusterSecret != "" && len(strings.TrimSpace(c.ClusterSecret)) < minSecretLen {
		return fmt.Errorf("--cluster-secret is shorter than %d characters: make one with `openssl rand -hex 32`", minSecretLen)
	}
	if c.GossipKey != "" {
		if _, err := gossipKey(c.GossipKey); err != nil {
			return err
		}
	}
	if c.ClusterSecret == "" && c.ClusterSecretFile == "" && !c.interbrokerTLS() && !c.alone() {
		return errors.New("brokers of a cluster must prove to each other that they belong to it: " +
			"give every broker the same secret with --cluster-secret-file (or STRATA_CLUSTER_SECRET), " +
			"made once with `openssl rand -hex 32`, or turn on inter-broker TLS with --tls-cert, --tls-key and --tls-ca " +
			"(only a broker started alone, without --join or --bootstrap-expect above 1, makes its own secret)")
	}
	return nil
}

// gossipKey decodes --gossip-key.
func gossipKey(s string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("--gossip-key: not base64 (make one with `openssl rand -base64 32`): %v", err)
	}
	if n := len(k); n != 16 && n != 24 && n != 32 {
		return nil, fmt.Errorf("--gossip-key: %d bytes, want 16, 24 or 32 (make one with `openssl rand -base64 32`)", n)
	}
	return k, nil
}

// clusterSecret returns the configured secret: --cluster-secret, the file
// of --cluster-secret-file, or, for a broker alone without TLS, the one in
// its data dir (made there on first start). nil means none (TLS alone).
func (c Config) clusterSecret() ([]byte, error) {
	switch {
	case c.ClusterSecret != "":
		return []byte(strings.TrimSpace(c.ClusterSecret)), nil
	case c.ClusterSecretFile != "":
		b, err := os.ReadFile(c.ClusterSecretFile)
		if err != nil {
			return nil, fmt.Errorf("--cluster-secret-file: %w", err)
		}
		s := strings.TrimSpace(string(b))
		if len(s) < minSecretLen {
			return nil, fmt.Errorf("--cluster-secret-file %s: secret shorter than %d characters: make one with `openssl rand -hex 32 > %s`", c.ClusterSecretFile, minSecretLen, c.ClusterSecretFile)
		}
		return []byte(s), nil
	case c.interbrokerTLS():
		return nil, nil
	}
	return c.generatedSecret()
}

// generatedSecret reads <data-dir>/cluster-secret, making it (32 random
// bytes, hex, mode 0600) if it does not exist.
func (c Config) generatedSecret() ([]byte, error) {
	path := filepath.Join(c.DataDir, secretFileName)
	b, err := os.ReadFile(path)
	if err == nil {
		if s := strings.TrimSpace(string(b)); len(s) >= minSecretLen {
			return []byte(s), nil
		}
		return nil, fmt.Errorf("%s: secret shorter than %d characters: delete it to have a new one made, or give --cluster-secret-file", path, minSecretLen)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read the cluster secret: %w", err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, err
	}
	s := hex.EncodeToString(raw[:])
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("make the cluster secret: %w", err)
	}
	_, err = f.WriteString(s + "\n")
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("make the cluster secret: %w", err)
	}
	return []byte(s), nil
}

// gossipLabel derives the gossip key from the cluster secret.
const gossipLabel = "strata gossip key v1"

// gossipKeyFor returns the key that encrypts gossip: --gossip-key, else
// one derived from the secret, else nil (gossip in the clear).
func (c Config) gossipKeyFor(secret []byte) ([]byte, error) {
	if c.GossipKey != "" {
		return gossipKey(c.GossipKey)
	}
	if len(secret) == 0 {
		return nil, nil
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(gossipLabel))
	return mac.Sum(nil), nil
}

// interbrokerSecurity is the transport's security for c with secret.
func (c Config) interbrokerSecurity(secret []byte, onError func(error)) (transport.Security, error) {
	sec := transport.Security{Secret: secret}
	if !c.interbrokerTLS() {
		return sec, nil
	}
	f := tlsconfig.Files{Cert: c.TLSCert, Key: c.TLSKey, CA: c.TLSCA, OnError: onError}
	var err error
	if sec.ServerTLS, err = f.Server(tlsconfig.RequireClientCert); err != nil {
		return sec, fmt.Errorf("inter-broker TLS: %w", err)
	}
	if _, err = f.Client("check"); err != nil {
		return sec, fmt.Errorf("inter-broker TLS: %w", err)
	}
	// Per dial: the server name is the host of the peer's address.
	sec.ClientTLS = f.Client
	return sec, nil
}

// initInterbroker resolves the secret and the transport's security (New).
func (b *Broker) initInterbroker() error {
	secret, err := b.cfg.clusterSecret()
	if err != nil {
		return err
	}
	b.secret = secret
	if b.gossipKey, err = b.cfg.gossipKeyFor(secret); err != nil {
		return err
	}
	b.security, err = b.cfg.interbrokerSecurity(secret, func(err error) {
		b.log.Warn("inter-broker TLS", zap.Error(err))
	})
	if err != nil {
		return err
	}
	if b.gossipKey == nil {
		b.log.Warn("gossip between brokers is not encrypted: give --gossip-key (or --cluster-secret, which a gossip key is derived from)")
	}
	b.metrics.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "strata_interbroker_auth_failures_total",
		Help: "Inter-broker connections, both ways, closed because the peer failed authentication (cluster secret or certificate).",
	}, func() float64 {
		if m := b.mux; m != nil {
			return float64(m.AuthFailures())
		}
		return 0
	}))
	return nil
}

// internalServer is the gRPC server of the internal service, on the
// inter-broker listener only, with the API's recovery and bounds.
func (b *Broker) serveInternal() {
	b.internal = grpc.NewServer(
		grpc.MaxRecvMsgSize(b.cfg.MaxRequestBytes),
		grpc.MaxSendMsgSize(b.cfg.MaxRequestBytes),
		grpc.ChainUnaryInterceptor(b.recover.unary, b.metrics.interceptor, boundsUnary),
		grpc.ChainStreamInterceptor(b.recover.stream, boundsStream),
	)
	v1.RegisterStrataInternalServer(b.internal, b)
	// The public API too, for calls one broker forwards to another on a
	// client's behalf (ListOffsets for group lag, TransferLeader): they go
	// through the authenticated inter-broker listener, whatever TLS or
	// SASL the client listeners require (peerPublic).
	v1.RegisterStrataServer(b.internal, b)
	srv, ln := b.internal, b.mux.Listener()
	b.goLoop(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			b.log.Error("inter-broker gRPC stopped", zap.Error(err))
		}
	})
}

// stopInternal stops the internal gRPC server, letting calls in flight
// finish within ShutdownTimeout.
func (b *Broker) stopInternal() {
	if b.internal == nil {
		return
	}
	done := make(chan struct{})
	go func() { b.internal.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(b.cfg.ShutdownTimeout):
		b.internal.Stop()
		<-done
	}
}

// DialInternal dials the internal service of the broker whose inter-broker
// listener (--raft-addr) is raftAddr, authenticating as cfg's brokers do
// (its cluster secret, or its certificate): for tools and tests. The hello
// claims 127.0.0.1:0, which a TLS certificate must name.
func DialInternal(raftAddr string, cfg Config) (*grpc.ClientConn, error) {
	secret, err := cfg.clusterSecret()
	if err != nil {
		return nil, err
	}
	sec, err := cfg.interbrokerSecurity(secret, nil)
	if err != nil {
		return nil, err
	}
	return grpc.NewClient("passthrough:///"+raftAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return transport.DialGRPC(ctx, addr, "127.0.0.1:0", sec)
		}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)))
}
