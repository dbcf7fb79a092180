package brokertest

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"

	v1 "github.com/stratalog/strata/api/v1"

	"github.com/stratalog/strata/pkg/broker"
)

// StartCluster starts n brokers (node ids 1..n) that form one cluster with
// --bootstrap-expect n, and waits until every one is ready. Broker 1 starts
// first; the others join through its gossip address. Each keeps its config
// in Configs so a test can restart it on the same data dir and ports.
func StartCluster(t testing.TB, n int, opts ...func(*broker.Config)) *Cluster {
	t.Helper()
	return startCluster(t, n, nil, opts)
}

// StartObservedCluster is StartCluster with every broker's log also
// written to tee (a zaptest/observer core, say), restarted and added
// brokers' too: for tests of what brokers log. The brokers' LogLevel
// still decides which entries are written.
func StartObservedCluster(t testing.TB, n int, tee zapcore.Core, opts ...func(*broker.Config)) *Cluster {
	t.Helper()
	return startCluster(t, n, tee, opts)
}

func startCluster(t testing.TB, n int, tee zapcore.Core, opts []func(*broker.Config)) *Cluster {
	t.Helper()
	c := &Cluster{t: t, opts: opts, tee: tee}
	for i := 1; i <= n; i++ {
		cfg := Config(t, uint32(i))
		cfg.BootstrapExpect = n
		if i > 1 {
			cfg.Join = []string{c.Brokers[0].GossipAddr()}
		}
		for _, o := range opts {
			o(&cfg)
		}
		b := run(t, cfg, tee)
		// Pin the bound ports, so that a restart keeps the addresses that
		// Raft configurations and gossip name.
		pin(&cfg, b)
		c.Brokers = append(c.Brokers, b)
		c.Configs = append(c.Configs, cfg)
	}
	for _, b := range c.Brokers {
		WaitReady(t, b)
		WaitBrokers(t, b, n)
	}
	return c
}

// WaitBrokers waits (up to 30 s) until b's metadata lists n live brokers:
// the quorum's leader registers brokers as gossip finds them, a moment
// after they are ready.
func WaitBrokers(t testing.TB, b *broker.Broker, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		md, err := b.Metadata(context.Background(), &v1.MetadataRequest{})
		alive := 0
		if err == nil {
			for _, br := range md.Brokers {
				if br.State == "alive" {
					alive++
				}
			}
		}
		if alive >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("brokertest: broker %d sees %d live brokers after 30s, want %d", b.NodeID(), alive, n)
		}
		time.Sleep(10 * time.Millisecond) // registration has no notification to wait on
	}
}

// Cluster is a set of in-process brokers.
type Cluster struct {
	t       testing.TB
	Brokers []*broker.Broker // index i holds node i+1; nil while stopped
	Configs []broker.Config
	opts    []func(*broker.Config)
	tee     zapcore.Core // also gets every broker's log, if not nil
}

// Broker returns node id's broker (nil while stopped).
func (c *Cluster) Broker(id uint32) *broker.Broker { return c.Brokers[id-1] }

// Stop closes node id's broker (its data stays).
func (c *Cluster) Stop(id uint32) {
	c.t.Helper()
	if b := c.Brokers[id-1]; b != nil {
		if err := b.Close(); err != nil {
			c.t.Errorf("brokertest: stop broker %d: %v", id, err)
		}
		c.Brokers[id-1] = nil
	}
}

// Restart starts node id again on its data dir and addresses, waiting
// until it is ready.
func (c *Cluster) Restart(id uint32) *broker.Broker {
	c.t.Helper()
	cfg := c.Configs[id-1]
	cfg.Join = nil
	for i, b := range c.Brokers {
		if b != nil && uint32(i+1) != id {
			cfg.Join = append(cfg.Join, c.Configs[i].GossipAddr)
		}
	}
	b := run(c.t, cfg, c.tee)
	WaitReady(c.t, b)
	c.Brokers[id-1] = b
	WaitBrokers(c.t, b, len(c.APIAddrs()))
	return b
}

// Add starts one more broker that joins the running cluster.
func (c *Cluster) Add() *broker.Broker {
	c.t.Helper()
	id := uint32(len(c.Brokers) + 1)
	cfg := Config(c.t, id)
	for i, b := range c.Brokers {
		if b != nil {
			cfg.Join = append(cfg.Join, c.Configs[i].GossipAddr)
		}
	}
	for _, o := range c.opts {
		o(&cfg)
	}
	b := run(c.t, cfg, c.tee)
	pin(&cfg, b)
	WaitReady(c.t, b)
	c.Brokers = append(c.Brokers, b)
	c.Configs = append(c.Configs, cfg)
	WaitBrokers(c.t, b, len(c.APIAddrs()))
	return b
}

// APIAddrs lists the running brokers' API addresses.
func (c *Cluster) APIAddrs() []string {
	var out []string
	for _, b := range c.Brokers {
		if b != nil {
			out = append(out, b.APIAddr())
		}
	}
	return out
}

// pin sets cfg's addresses to those b bound, so that a restart keeps the
// addresses that Raft configurations and gossip name.
func pin(cfg *broker.Config, b *broker.Broker) {
	cfg.APIAddr, cfg.HTTPAddr, cfg.RaftAddr, cfg.GossipAddr = b.APIAddr(), b.HTTPAddr(), b.RaftAddr(), b.GossipAddr()
	if len(cfg.Listeners) == 0 {
		return
	}
	cfg.APIAddr = ""
	ls := make([]string, len(cfg.Listeners))
	for i, l := range cfg.Listeners {
		name, _, _ := strings.Cut(l, "://")
		ls[i] = name + "://" + b.ListenerAddr(strings.ToUpper(name))
	}
	cfg.Listeners = ls
}
