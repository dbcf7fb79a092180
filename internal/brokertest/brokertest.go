// Package brokertest starts real in-process brokers for tests: real
// listeners on 127.0.0.1 with OS-chosen ports, real files in a temporary
// directory, fast Raft timeouts, stopped when the test ends.
package brokertest

import (
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/stratalog/strata/pkg/broker"
	"github.com/stratalog/strata/pkg/replication"
)

// Start runs a single-node broker and returns its API address once it is
// ready. opts may adjust the config (DataDir and the addresses are already
// set).
func Start(t testing.TB, opts ...func(*broker.Config)) string {
	return StartBroker(t, opts...).APIAddr()
}

// FastRaft is a Raft tuning for tests that want raft's own timers to
// decide elections, in a few hundred ms. Test brokers do not use it by
// default: they run the broker's own tuning (its elector decides
// elections, raft's timers are the fallback) at a heartbeat timeout of
// HeartbeatTimeout.
func FastRaft() *raft.Config {
	c := replication.DefaultRaftConfig()
	c.HeartbeatTimeout = 200 * time.Millisecond
	c.ElectionTimeout = 200 * time.Millisecond
	c.LeaderLeaseTimeout = 100 * time.Millisecond
	c.CommitTimeout = 20 * time.Millisecond
	return c
}

// HeartbeatTimeout is test brokers' --raft-heartbeat-timeout: a leader
// whose broker is silent this long is replaced.
const HeartbeatTimeout = 200 * time.Millisecond

// Config is a test broker's config: loopback, port 0 everywhere, a fresh
// data dir.
func Config(t testing.TB, id uint32) broker.Config {
	cfg := broker.DefaultConfig()
	cfg.NodeID = id
	cfg.DataDir = t.TempDir()
	cfg.APIAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.RaftAddr = "127.0.0.1:0"
	cfg.GossipAddr = "127.0.0.1:0"
	cfg.LogLevel = "warn"
	cfg.RaftHeartbeatTimeout = HeartbeatTimeout
	cfg.ClusterSecret = ClusterSecret
	return cfg
}

// ClusterSecret is test brokers' --cluster-secret: brokers of one test
// cluster prove it to each other.
const ClusterSecret = "brokertest-cluster-secret-0123456789abcdef"

// StartBroker is Start returning the broker itself.
func StartBroker(t testing.TB, opts ...func(*broker.Config)) *broker.Broker {
	t.Helper()
	cfg := Config(t, 1)
	for _, o := range opts {
		o(&cfg)
	}
	b := Run(t, cfg)
	WaitReady(t, b)
	return b
}

// Run starts a broker with cfg (without waiting for it to be ready) and
// closes it when the test ends.
func Run(t testing.TB, cfg broker.Config) *broker.Broker {
	t.Helper()
	return run(t, cfg, nil)
}

// run is Run, also writing the broker's log to tee if it is not nil.
func run(t testing.TB, cfg broker.Config, tee zapcore.Core) *broker.Broker {
	t.Helper()
	lg := zaptest.NewLogger(t, zaptest.Level(zapLevel(cfg.LogLevel)))
	if tee != nil {
		lg = lg.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return zapcore.NewTee(c, tee) }))
	}
	b, err := broker.New(cfg, lg.Named(fmt.Sprintf("b%d", cfg.NodeID)))
	if err != nil {
		t.Fatalf("brokertest: new broker: %v", err)
	}
	if err := b.Start(); err != nil {
		t.Fatalf("brokertest: start broker %d: %v", cfg.NodeID, err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("brokertest: close broker %d: %v", cfg.NodeID, err)
		}
	})
	return b
}

// WaitReady waits (up to 30 s) for a broker to be ready.
func WaitReady(t testing.TB, b *broker.Broker) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !b.Ready() {
		if time.Now().After(deadline) {
			t.Fatalf("brokertest: broker %d not ready within 30s", b.NodeID())
		}
		time.Sleep(10 * time.Millisecond) // readiness has no notification to wait on
	}
}
