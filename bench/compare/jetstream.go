package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// jetstreamSystem runs nats-server processes with JetStream: one alone,
// or several joined by routes into a cluster.
type jetstreamSystem struct {
	maxPending int // PublishAsyncMaxPending of the pipelined produce
}

func (jetstreamSystem) name() string { return "JetStream" }

type jsCluster struct {
	procs   procs
	urls    map[string]string // server name -> client URL
	n       int
	admin   *nats.Conn // stream management, via any server
	js      jetstream.JetStream
	maxPend int
	conns   map[string]*nats.Conn // per stream: connected to its leader
}

// natsConfig is one server's configuration file. sync_interval: always
// fsyncs every write before the acknowledgement, as Strata's --fsync
// always does.
func natsConfig(name, client, monitor, dir, clusterAddr string, routes []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "server_name: %s\nlisten: %q\nhttp: %q\n", name, client, monitor)
	fmt.Fprintf(&b, "jetstream {\n  store_dir: %q\n  sync_interval: always\n}\n", dir)
	if clusterAddr != "" {
		fmt.Fprintf(&b, "cluster {\n  name: bench\n  listen: %q\n  routes: [\n", clusterAddr)
		for _, r := range routes {
			fmt.Fprintf(&b, "    %q\n", "nats-route://"+r)
		}
		b.WriteString("  ]\n}\n")
	}
	return b.String()
}

func (sys jetstreamSystem) start(ctx context.Context, bins binaries, n int, dir string) (cluster, error) {
	c := &jsCluster{urls: map[string]string{}, n: n, conns: map[string]*nats.Conn{}, maxPend: sys.maxPending}
	used := ports{}
	type addrs struct{ client, monitor, cluster string }
	var nodes []addrs
	var routes []string
	for range n {
		var a addrs
		for _, p := range []*string{&a.client, &a.monitor, &a.cluster} {
			addr, err := used.next()
			if err != nil {
				return nil, err
			}
			*p = addr
		}
		nodes = append(nodes, a)
		routes = append(routes, a.cluster)
	}
	var all []string
	for i, a := range nodes {
		name := fmt.Sprintf("n%d", i+1)
		clusterAddr := ""
		if n > 1 {
			clusterAddr = a.cluster
		}
		conf := filepath.Join(dir, name+".conf")
		if err := os.WriteFile(conf, []byte(natsConfig(name, a.client, a.monitor, filepath.Join(dir, name), clusterAddr, routes)), 0o644); err != nil {
			c.procs.stopAll()
			return nil, err
		}
		p, err := startProc("nats-server "+name, bins.natsServer, []string{"-c", conf}, nil, filepath.Join(dir, name+".log"))
		if err != nil {
			c.procs.stopAll()
			return nil, err
		}
		c.procs = append(c.procs, p)
		c.urls[name] = "nats://" + a.client
		all = append(all, "nats://"+a.client)
	}
	// /healthz answers 200 once JetStream is up and, in a cluster, the
	// meta group has a leader this server is current with.
	for _, a := range nodes {
		url := "http://" + a.monitor + "/healthz"
		err := waitUntil(ctx, 60*time.Second, c.procs, func(ctx context.Context) error { return healthy(ctx, url) })
		if err != nil {
			c.procs.stopAll()
			return nil, fmt.Errorf("nats-server at %s not ready: %w", a.client, err)
		}
	}
	nc, err := nats.Connect(strings.Join(all, ","), nats.Name("bench-compare-admin"))
	if err != nil {
		c.procs.stopAll()
		return nil, err
	}
	c.admin = nc
	c.js, err = jetstream.New(nc)
	if err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

func healthy(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

func subject(stream string) string { return "bench." + stream }

// createLog makes a file-backed stream with one replica per server, then
// connects a client to the stream's leader: Strata's client talks to the
// partition leader itself, and a JetStream client on another server would
// pay an extra hop (its server routes every message to the leader).
func (c *jsCluster) createLog(ctx context.Context, stream string) error {
	var s jetstream.Stream
	err := waitUntil(ctx, 60*time.Second, c.procs, func(ctx context.Context) (err error) {
		s, err = c.js.CreateStream(ctx, jetstream.StreamConfig{
			Name:     stream,
			Subjects: []string{subject(stream)},
			Storage:  jetstream.FileStorage,
			Replicas: c.n,
		})
		return err
	})
	if err != nil {
		return err
	}
	leader := "n1"
	if c.n > 1 {
		err = waitUntil(ctx, 60*time.Second, c.procs, func(ctx context.Context) error {
			info, err := s.Info(ctx)
			if err != nil {
				return err
			}
			ci := info.Cluster
			if ci == nil || ci.Leader == "" {
				return errors.New("no leader yet")
			}
			if len(ci.Replicas) != c.n-1 {
				return fmt.Errorf("%d of %d followers", len(ci.Replicas), c.n-1)
			}
			for _, r := range ci.Replicas {
				if !r.Current {
					return fmt.Errorf("follower %s not current", r.Name)
				}
			}
			leader = ci.Leader
			return nil
		})
		if err != nil {
			return err
		}
	}
	url, ok := c.urls[leader]
	if !ok {
		return fmt.Errorf("stream %s: leader %q is not one of this cluster's servers", stream, leader)
	}
	nc, err := nats.Connect(url, nats.Name("bench-compare-"+stream))
	if err != nil {
		return err
	}
	c.conns[stream] = nc
	return nil
}

// pipelined publishes with PublishAsync, at most maxPend unacknowledged.
func (c *jsCluster) pipelined(ctx context.Context, stream string, payload []byte, n int) (int, error) {
	var acked atomic.Int64
	var mu sync.Mutex
	var firstErr error
	js, err := jetstream.New(c.conns[stream],
		jetstream.WithPublishAsyncMaxPending(c.maxPend),
		jetstream.WithPublishAsyncAckHandler(func(jetstream.JetStream, *nats.Msg, *jetstream.PubAck) { acked.Add(1) }),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
			mu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
		}))
	if err != nil {
		return 0, err
	}
	defer js.CleanupPublisher()
	subj := subject(stream)
	for i := 0; i < n && ctx.Err() == nil; {
		_, err := js.PublishAsync(subj, payload)
		if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			continue // maxPend unacknowledged for 200 ms: try again, until ctx ends
		}
		if err != nil {
			return int(acked.Load()), err
		}
		i++
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		// Cut short: the records still unacknowledged get 10 s more, as
		// Strata's Producer.Close gives them.
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(10 * time.Second):
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return int(acked.Load()), firstErr
}

func (c *jsCluster) oneByOne(ctx context.Context, stream string, payload []byte, n int, observe func(time.Duration)) (int, error) {
	js, err := jetstream.New(c.conns[stream])
	if err != nil {
		return 0, err
	}
	subj := subject(stream)
	acked := 0
	for acked < n && ctx.Err() == nil {
		start := time.Now()
		if _, err := js.Publish(ctx, subj, payload); err != nil {
			return acked, err
		}
		observe(time.Since(start))
		acked++
	}
	return acked, ctx.Err()
}

// readAll uses an ordered consumer (ephemeral, no acks, in order) with
// the library's default pull sizes (500 messages per pull).
func (c *jsCluster) readAll(ctx context.Context, stream string, n int) (int, error) {
	js, err := jetstream.New(c.conns[stream])
	if err != nil {
		return 0, err
	}
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, err
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return 0, err
	}
	var got atomic.Int64
	done := make(chan struct{})
	cc, err := cons.Consume(func(jetstream.Msg) {
		if got.Add(1) == int64(n) {
			close(done)
		}
	})
	if err != nil {
		return 0, err
	}
	defer cc.Stop()
	select {
	case <-done:
		return n, nil
	case <-ctx.Done():
		return int(got.Load()), ctx.Err()
	}
}

func (c *jsCluster) close() {
	for _, nc := range c.conns {
		nc.Close()
	}
	if c.admin != nil {
		c.admin.Close()
	}
	c.procs.stopAll()
}
