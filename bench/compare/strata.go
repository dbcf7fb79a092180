package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratalog/strata/pkg/client"
)

// strataSystem runs strata-broker processes: one alone, or several that
// bootstrap a cluster together (--bootstrap-expect, --join).
type strataSystem struct{}

func (strataSystem) name() string { return "Strata" }

// benchSecret is the inter-broker secret of the benchmark's clusters,
// which listen on loopback only.
const benchSecret = "strata-bench-compare-loopback-only-0123456789"

type strataCluster struct {
	procs procs
	api   []string
	n     int
	cl    *client.Client
}

func (strataSystem) start(ctx context.Context, bins binaries, n int, dir string) (cluster, error) {
	c := &strataCluster{n: n}
	used := ports{}
	type addrs struct{ api, http, raft, gossip string }
	var nodes []addrs
	var gossips []string
	for range n {
		var a addrs
		for _, p := range []*string{&a.api, &a.http, &a.raft, &a.gossip} {
			addr, err := used.next()
			if err != nil {
				return nil, err
			}
			*p = addr
		}
		nodes = append(nodes, a)
		gossips = append(gossips, a.gossip)
		c.api = append(c.api, a.api)
	}
	// A clean environment: no STRATA_* variable of the caller's may
	// change a broker's settings behind the flags.
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STRATA_") {
			env = append(env, kv)
		}
	}
	env = append(env, "STRATA_CLUSTER_SECRET="+benchSecret)
	for i, a := range nodes {
		args := []string{
			"--node-id", fmt.Sprint(i + 1),
			"--data-dir", filepath.Join(dir, fmt.Sprintf("node%d", i+1)),
			"--api-addr", a.api, "--http-addr", a.http, "--raft-addr", a.raft, "--gossip-addr", a.gossip,
			"--fsync", "always", // the default, stated: fsync before acknowledging
			"--log-level", "warn",
		}
		if n > 1 {
			args = append(args, "--bootstrap-expect", fmt.Sprint(n), "--join", strings.Join(gossips, ","))
		}
		p, err := startProc(fmt.Sprintf("strata-broker %d", i+1), bins.strataBroker, args, env, filepath.Join(dir, fmt.Sprintf("node%d.log", i+1)))
		if err != nil {
			c.procs.stopAll()
			return nil, err
		}
		c.procs = append(c.procs, p)
	}
	// Every broker, asked itself, names a controller and sees all n alive:
	// before that, a controller may refuse a topic with replication n.
	for _, api := range c.api {
		err := waitUntil(ctx, 60*time.Second, c.procs, func(ctx context.Context) error { return strataNodeReady(ctx, api, n) })
		if err != nil {
			c.procs.stopAll()
			return nil, fmt.Errorf("strata-broker at %s not ready: %w", api, err)
		}
	}
	cl, err := client.New(c.api)
	if err != nil {
		c.procs.stopAll()
		return nil, err
	}
	c.cl = cl
	return c, nil
}

func strataNodeReady(ctx context.Context, addr string, n int) error {
	cl, err := client.New([]string{addr}, client.RetryTimeout(0)) // one attempt, at addr
	if err != nil {
		return err
	}
	defer cl.Close()
	md, err := cl.Admin().Metadata(ctx)
	if err != nil {
		return err
	}
	if md.ControllerID == 0 {
		return errors.New("no controller yet")
	}
	alive := 0
	for _, b := range md.Brokers {
		if b.State == "alive" {
			alive++
		}
	}
	if alive != n {
		return fmt.Errorf("%d of %d brokers alive", alive, n)
	}
	return nil
}

func (c *strataCluster) createLog(ctx context.Context, topic string) error {
	adm := c.cl.Admin()
	if _, err := adm.CreateTopic(ctx, topic, 1, int32(c.n), nil); err != nil {
		return err
	}
	return waitUntil(ctx, 60*time.Second, c.procs, func(ctx context.Context) error {
		d, err := adm.DescribeTopic(ctx, topic)
		if err != nil {
			return err
		}
		for _, p := range d.Partitions {
			if p.Leader == 0 {
				return fmt.Errorf("partition %d has no leader", p.Partition)
			}
			if len(p.InSyncReplicas) != c.n {
				return fmt.Errorf("partition %d: in sync %v of %d replicas", p.Partition, p.InSyncReplicas, c.n)
			}
		}
		return nil
	})
}

// pipelined uses the Producer's defaults: 5 ms linger, 1 MiB batches,
// 10000 records buffered, one request in flight per partition, acks from
// a quorum of the replicas.
func (c *strataCluster) pipelined(ctx context.Context, topic string, payload []byte, n int) (int, error) {
	p := c.cl.NewProducer()
	var acked atomic.Int64
	var mu sync.Mutex
	var firstErr error
	cb := func(_ *client.Record, err error) {
		if err != nil {
			mu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
			return
		}
		acked.Add(1)
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		p.Produce(ctx, &client.Record{Topic: topic, Value: payload}, cb)
	}
	err := p.Flush(ctx)
	// Records still unacknowledged (the run was cut short) get 10 s more.
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p.Close(cctx)
	mu.Lock()
	defer mu.Unlock()
	return int(acked.Load()), errors.Join(firstErr, err)
}

func (c *strataCluster) oneByOne(ctx context.Context, topic string, payload []byte, n int, observe func(time.Duration)) (int, error) {
	p := c.cl.NewProducer()
	defer p.Close(context.Background()) // nothing is buffered after each ProduceSync
	acked := 0
	for acked < n && ctx.Err() == nil {
		start := time.Now()
		if err := p.ProduceSync(ctx, &client.Record{Topic: topic, Value: payload}).FirstErr(); err != nil {
			return acked, err
		}
		observe(time.Since(start))
		acked++
	}
	return acked, ctx.Err()
}

// readAll uses a plain Consumer from Earliest with its defaults (fetches
// of up to 50 MiB, long-polls of up to 500 ms).
func (c *strataCluster) readAll(ctx context.Context, topic string, n int) (int, error) {
	cs, err := c.cl.NewConsumer(topic, client.StartAt(client.Earliest()))
	if err != nil {
		return 0, err
	}
	defer cs.Close()
	got := 0
	for got < n {
		recs, err := cs.Poll(ctx)
		if err != nil {
			return got, err
		}
		got += len(recs)
	}
	return got, nil
}

func (c *strataCluster) close() {
	c.cl.Close()
	c.procs.stopAll()
}
