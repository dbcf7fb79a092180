package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/cluster"
	"github.com/stratalog/strata/pkg/consumer"
	"github.com/stratalog/strata/pkg/metadata"
	"github.com/stratalog/strata/pkg/partition"
	"github.com/stratalog/strata/pkg/replication"
	"github.com/stratalog/strata/pkg/replication/transport"
)

// Broker is one Strata broker: a member of the cluster's gossip, a replica
// of the metadata quorum, the replicas of the partitions placed on it, a
// gRPC API listener and an HTTP listener for metrics, health and pprof.
//
//	           ┌──────────────── strata-broker ─────────────────┐
//	clients ──▶│ gRPC API ─▶ handlers ─▶ replicas (partition.*)  │
//	           │                 │           └─ replication.Group ─┐
//	           │                 └─▶ metadata.RaftStore ───────────┤ transport.Mux ◀──▶ other brokers
//	           │ controller: cluster.Membership (gossip) ─▶ quorum  │  (the inter-broker listener, --raft-addr:
//	           │ internal gRPC service (interbroker.go) ◀───────────┤   raft frames + internal gRPC, authenticated)
//	           └─────────────────────────────────────────────────┘
type Broker struct {
	v1.UnimplementedStrataServer
	v1.UnimplementedStrataInternalServer

	cfg     Config
	log     *zap.Logger
	fsync   partition.FsyncPolicy
	metrics *metrics
	recover *recoverer          // recovering interceptors (recover.go)
	authn   *authn              // sessions and SCRAM exchanges (authn.go)
	authz   *authz              // ACL denials (authz.go)
	raftCfg func() *raft.Config // raft tuning for partition groups
	// inflight bounds the bytes produce and fetch hold (inflight.go).
	inflight inflight
	// logCopy paces and counts the log this broker serves to snapshot
	// installs' copies (read_log.go).
	logCopy *copyThrottle

	// Started by Start, stopped by Close.
	mux *transport.Mux
	// secret, gossipKey and security authenticate brokers to each
	// other (interbroker.go).
	secret    []byte
	gossipKey []byte
	security  transport.Security
	stable    *replication.StableStores
	meta      *metadata.RaftStore
	members   *cluster.Membership
	replicas  replicas
	// producerIDs: this broker's block of producer ids (init_producer_id.go).
	producerIDs producerIDs
	// retentionClock: the time retention decides by (retention_clock.go).
	retentionClock retentionClock
	peers          peers
	leaders        leaderNews
	elect          elector
	cleaner        *cleaner
	coord          *consumer.Coordinator // consumer groups of the offsets partitions led here

	// adminMu serialises topic creation, deletion and config changes made
	// through this broker.
	adminMu sync.Mutex
	// moving holds the groups of partition moves running on this broker.
	moving sync.Map

	internal *grpc.Server // the internal service, on the inter-broker listener (interbroker.go)
	api      []*apiServer // client listeners, the CLIENT (or first) one first
	http     *http.Server
	httpLn   net.Listener
	ready    atomic.Bool
	stopping atomic.Bool
	health   healthView
	// bootstrapWaitLogged: when the controller last logged that it waits
	// for bootstrap peers (controller loop only).
	bootstrapWaitLogged time.Time
	// waitingFor says whom the broker has and whom it waits for while
	// it waits for bootstrap peers, for /readyz and the API's not-ready
	// error; nil otherwise (controller.go).
	waitingFor atomic.Pointer[string]
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	stopOnce   sync.Once
	stopErr    error
}

// New checks the config and prepares the data directory. It binds nothing
// and joins nothing; Start does.
func New(cfg Config, log *zap.Logger) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("create --data-dir %s: %w", cfg.DataDir, err)
	}
	b := &Broker{cfg: cfg, log: log.With(zap.Uint32("node", cfg.NodeID)), metrics: newMetrics()}
	b.logCopy = newCopyThrottle(cfg.LogCopyBytesPerSecond, b.metrics.reg)
	b.inflight.init(cfg.MaxInflightBytes)
	b.raftCfg = func() *raft.Config {
		// Raft's own timers are the fallback: the broker's elector
		// replaces a gone or silent leader after one heartbeat timeout
		// (failover.go).
		c := replication.DefaultRaftConfig()
		c.HeartbeatTimeout = raftTimerScale * cfg.RaftHeartbeatTimeout
		c.ElectionTimeout = raftTimerScale * cfg.RaftHeartbeatTimeout
		c.LeaderLeaseTimeout = raftLeaseScale * cfg.RaftHeartbeatTimeout
		// An idle leader's empty AppendEntries, the only way an idle
		// follower learns the last commit index: each costs both brokers
		// a few goroutine hand-offs and syscalls (at 2s, 7-8% of a core
		// per broker at 1,000 partitions). Consumers read from leaders.
		c.CommitTimeout = raftTimerScale * cfg.RaftHeartbeatTimeout
		return c
	}
	if cfg.Fsync == "interval" {
		b.fsync = partition.FsyncInterval
	}
	b.replicas.init()
	b.elect.init()
	b.metrics.register(b)
	b.recover = newRecoverer(b.log, b.metrics.reg)
	if err := b.initInterbroker(); err != nil {
		return nil, err
	}
	b.authn, b.authz = newAuthn(cfg.SASLSessionTTL, b.metrics.reg), newAuthz(b.metrics.reg)
	// The public API answers only once the broker knows the cluster's
	// metadata; broker-to-broker calls are always served.
	b.metrics.notReady = func(method string) bool {
		return !b.ready.Load() && !strings.HasPrefix(method, "/"+v1.StrataInternal_ServiceDesc.ServiceName+"/")
	}
	b.metrics.waitReason = b.bootstrapWaitReason
	return b, nil
}

// SetRaftTuning replaces the Raft configuration of partition groups and the
// metadata quorum (tests shorten the timeouts). Call it before Start.
func (b *Broker) SetRaftTuning(fn func() *raft.Config) { b.raftCfg = fn }

// Start binds every listener, opens the metadata replica, joins gossip and
// starts the loops that shape the cluster and open this broker's
// partitions. It returns once the API serves; the cluster may still be
// forming (see /readyz).
func (b *Broker) Start() (err error) {
	defer func() {
		if err != nil {
			b.Close()
		}
	}()
	// Heartbeat rounds, and pulses to watched peers, every tick: three
	// per heartbeat timeout (transport/beats.go, liveness.go).
	muxOpts := transport.Options{
		Logger:            b.log.Named("raft-transport"),
		AdvertiseHost:     b.cfg.AdvertiseHost,
		HeartbeatInterval: b.tick(),
		OnPeerDown:        b.onPeerDown,
		Security:          b.security,
	}
	if b.mux, err = transport.Listen(b.cfg.RaftAddr, muxOpts); err != nil {
		return fmt.Errorf("listen on --raft-addr %s (the inter-broker listener): %w", b.cfg.RaftAddr, err)
	}
	if err = b.listenAPI(); err != nil {
		return err
	}
	if b.httpLn, err = net.Listen("tcp", b.cfg.HTTPAddr); err != nil {
		return fmt.Errorf("listen on --http-addr %s: %w", b.cfg.HTTPAddr, err)
	}
	if b.stable, err = replication.OpenStableStores(filepath.Join(b.cfg.DataDir, "raft-stable.db")); err != nil {
		return err
	}
	metaTrans, err := b.mux.Transport(metadata.GroupName)
	if err != nil {
		return err
	}
	if b.meta, err = metadata.OpenRaftStore(metadata.RaftConfig{
		NodeID: b.cfg.NodeID, Dir: filepath.Join(b.cfg.DataDir, "metadata"), Transport: metaTrans, Logger: b.log,
		Tune: func(c *raft.Config) { b.tuneMeta(c) },
	}); err != nil {
		metaTrans.Close()
		return err
	}
	if b.members, err = cluster.Join(cluster.Config{
		NodeID:     cluster.NodeID(b.cfg.NodeID),
		GossipAddr: b.cfg.GossipAddr,
		Seeds:      b.cfg.Join,
		Local:      isLoopback(b.cfg.GossipAddr),
		Key:        b.gossipKey,
		Logger:     b.log,
		Clock:      b.now,
		Meta: cluster.Meta{
			NodeID:    cluster.NodeID(b.cfg.NodeID),
			APIAddr:   b.api[0].l.Advertised,
			RaftAddr:  b.cfg.advertise(string(b.mux.Addr())),
			HTTPAddr:  b.cfg.advertise(b.httpLn.Addr().String()),
			Version:   Version,
			Listeners: b.advertisedListeners(),
		},
	}); err != nil {
		return err
	}

	if err = b.serveAPI(); err != nil {
		return err
	}
	b.serveInternal()
	b.http = &http.Server{Handler: b.httpHandler(), ReadHeaderTimeout: 10 * time.Second}
	if err = b.httpTLS(); err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	b.leaders.init()
	b.goLoop(func() { b.serveHTTP() })
	b.goLoop(func() { b.runController(ctx) })
	b.goLoop(func() { b.runReplicas(ctx) })
	b.goLoop(func() { b.runLeaderNews(ctx) })
	b.goLoop(func() { b.runElector(ctx) })
	b.goLoop(func() { b.runRebalance(ctx) })
	b.cleaner = newCleaner(b)
	b.goLoop(func() { b.runHousekeeping(ctx) })
	b.goLoop(func() { b.cleaner.run(ctx) })
	scrub := newScrubber(b)
	b.goLoop(func() { scrub.run(ctx) })
	b.coord = consumer.NewCoordinator(b.now)
	b.goLoop(func() { b.runGroups(ctx) })
	b.goLoop(func() { b.runHealth(ctx) })
	return nil
}

// every runs f every d until ctx ends (the broker's periodic loops).
func every(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

func (b *Broker) goLoop(f func()) {
	b.wg.Add(1)
	go func() { defer b.wg.Done(); f() }()
}

// newGRPCServer makes the gRPC server of one client listener.
func (b *Broker) newGRPCServer(l *listener, opts ...grpc.ServerOption) *grpc.Server {
	srv := grpc.NewServer(append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(b.cfg.MaxRequestBytes),
		grpc.MaxSendMsgSize(b.cfg.MaxRequestBytes),
		// gRPC reads a request whole as soon as its stream opens, before
		// any handler can refuse it; the stream limit is what keeps a
		// connection's unanswered requests out of memory (inflight.go).
		grpc.MaxConcurrentStreams(b.cfg.MaxStreamsPerConnection),
		// The listener first, so that every interceptor after it knows
		// which one a request came in on (listener.go); then recovery,
		// so that it covers every interceptor after it; then metrics,
		// so that requests the security checks refuse are counted too
		// (code AUTHENTICATION_FAILED, AUTHORIZATION_FAILED). Every
		// request's fields are bounded (bounds.go).
		grpc.ChainUnaryInterceptor(b.listenerUnary(l), b.recover.unary, b.metrics.interceptor, b.securityUnary, boundsUnary),
		grpc.ChainStreamInterceptor(listenerStream(l), b.recover.stream, b.securityStream, boundsStream),
	}, opts...)...)
	v1.RegisterStrataServer(srv, b)
	return srv
}

func (b *Broker) serveHTTP() {
	if err := b.http.Serve(b.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
		b.log.Error("http listener stopped", zap.Error(err))
	}
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	return err == nil && (host == "localhost" || ip != nil && ip.IsLoopback())
}

// metaCommitTimeout is the metadata quorum's raft CommitTimeout.
const metaCommitTimeout = 200 * time.Millisecond

// tuneMeta applies the broker's raft tuning to the metadata quorum.
func (b *Broker) tuneMeta(c *raft.Config) {
	t := b.raftCfg()
	c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = t.HeartbeatTimeout, t.ElectionTimeout, t.LeaderLeaseTimeout
	// Short enough that the other brokers learn of a metadata change
	// (a new topic, a move) within a fraction of a second; at raft's
	// 50ms its idle AppendEntries cost as much as all partitions'.
	c.CommitTimeout = min(metaCommitTimeout, t.CommitTimeout)
}

// APIAddr is the bound address of the CLIENT listener, or of the first
// listener if none is named CLIENT (useful with port 0).
func (b *Broker) APIAddr() string { return b.api[0].ln.Addr().String() }

// HTTPAddr is the bound HTTP address.
func (b *Broker) HTTPAddr() string { return b.httpLn.Addr().String() }

// GossipAddr is the bound gossip address, for other brokers' --join.
func (b *Broker) GossipAddr() string { return b.members.Addr() }

// RaftAddr is the bound Raft transport address.
func (b *Broker) RaftAddr() string { return string(b.mux.Addr()) }

// NodeID is the broker's node id.
func (b *Broker) NodeID() uint32 { return b.cfg.NodeID }

// Mux is the broker's Raft transport (tests cut it off with Block).
func (b *Broker) Mux() *transport.Mux { return b.mux }

// Close stops serving (letting in-flight calls finish within
// ShutdownTimeout), leaves gossip, closes every partition replica (their
// logs fsynced) and the metadata replica. The rest of the cluster goes on.
func (b *Broker) Close() error {
	b.stopOnce.Do(func() {
		b.stopping.Store(true)
		b.ready.Store(false)
		b.stopAPI()
		b.stopInternal()
		if b.http != nil {
			ctx, cancel := context.WithTimeout(context.Background(), b.cfg.ShutdownTimeout)
			_ = b.http.Shutdown(ctx)
			cancel()
		} else if b.httpLn != nil {
			b.httpLn.Close()
		}
		if b.cancel != nil {
			b.cancel()
		}
		b.wg.Wait()
		var errs []error
		if b.members != nil {
			errs = append(errs, b.members.Close())
		}
		errs = append(errs, b.replicas.closeAll())
		if b.meta != nil {
			errs = append(errs, b.meta.Close())
		}
		if b.stable != nil {
			errs = append(errs, b.stable.Close())
		}
		if b.mux != nil {
			errs = append(errs, b.mux.Close())
		}
		b.peers.closeAll()
		b.stopErr = errors.Join(errs...)
	})
	return b.stopErr
}

// Ready reports whether the broker serves requests: the metadata quorum has
// a leader and this broker has the cluster's identity.
func (b *Broker) Ready() bool { return b.ready.Load() }
