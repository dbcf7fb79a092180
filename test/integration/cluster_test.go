package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/pkg/client"
	"google.golang.org/grpc"
)

const (
	clusterTopic      = "replicated"
	clusterPartitions = 3
	clusterProducers  = 4
	// produceInterval paces each producer (one record per tick), so the
	// brokers are busy but two cores are not saturated.
	produceInterval = 4 * time.Millisecond
	// maxPerProducer bounds the history whatever happens.
	maxPerProducer = 100_000
	// defaultDowntime is how long a killed broker stays down.
	defaultDowntime = 2500 * time.Millisecond
	// failoverBound is generous: the figure is for the report, the bound
	// only catches a partition that never recovers.
	failoverBound = 15 * time.Second
)

// TestClusterKillLeaders runs three broker processes, produces to a
// 3-partition RF-3 topic from four producers while kill -9'ing a
// partition leader and restarting it (on the same data dir and ports) at
// least five times, then checks the history against the log read back
// from the leaders, and every replica's on-disk log against the others.
//
// STRATA_IT_SEED sets the seed (printed), STRATA_IT_KILLS the number of
// kills (default 5), STRATA_IT_DOWNTIME how long a killed broker stays
// down (default 2.5s), STRATA_IT_LOG_LEVEL the brokers' log level (default
// info; the logs are in the test's temp dir and their tails are printed
// on failure).
func TestClusterKillLeaders(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three broker processes and kills them; skipped with -short")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("STRATA_IT_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("STRATA_IT_SEED: %v", err)
		}
		seed = v
	}
	kills := 5
	if s := os.Getenv("STRATA_IT_KILLS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > 50 {
			t.Fatalf("STRATA_IT_KILLS=%q: want 1..50", s)
		}
		kills = v
	}
	downtime := defaultDowntime
	if s := os.Getenv("STRATA_IT_DOWNTIME"); s != "" {
		v, err := time.ParseDuration(s)
		if err != nil || v < 0 || v > time.Minute {
			t.Fatalf("STRATA_IT_DOWNTIME=%q: want a duration up to 1m", s)
		}
		downtime = v
	}
	t.Logf("seed %d (set STRATA_IT_SEED=%d to repeat), %d kills, %s down each", seed, seed, kills, downtime)
	rng := rand.New(rand.NewPCG(seed, 0))

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	began := time.Now()

	c := newTestCluster(t, 3)
	admin, err := client.New(c.apiAddrs(), client.RetryTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	adm := admin.Admin()
	if err := waitFor(ctx, 60*time.Second, func(ctx context.Context) error { return c.clusterReady(ctx) }); err != nil {
		t.Fatalf("cluster not ready: %v", err)
	}
	t.Logf("cluster ready after %s", time.Since(began).Round(time.Millisecond))
	if _, err := adm.CreateTopic(ctx, clusterTopic, clusterPartitions, 3, nil); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(ctx, 30*time.Second, func(ctx context.Context) error {
		_, err := topicHealthy(ctx, adm, clusterTopic)
		return err
	}); err != nil {
		t.Fatalf("topic not healthy: %v", err)
	}

	// Producers: each its own client (with the recording interceptor)
	// and producer, one record per tick, keys over 64 values.
	h := newHistory(clusterProducers)
	prodCtx, stopProducing := context.WithCancel(ctx)
	defer stopProducing()
	var wg sync.WaitGroup
	var producers []*client.Producer
	for g := range clusterProducers {
		cl, err := client.New(c.apiAddrs(), client.DialOptions(grpc.WithChainUnaryInterceptor(h.intercept)), client.RetryTimeout(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		p := cl.NewProducer(client.Linger(2*time.Millisecond), client.DeliveryTimeout(20*time.Second), client.MaxBufferedRecords(500))
		producers = append(producers, p)
		prng := rand.New(rand.NewPCG(seed, uint64(g+1)))
		wg.Go(func() {
			tick := time.NewTicker(produceInterval)
			defer tick.Stop()
			for seq := range maxPerProducer {
				select {
				case <-prodCtx.Done():
					return
				case <-tick.C:
				}
				v := fmt.Sprintf("p%d-%d", g, seq)
				o := h.invoke(g, seq, v)
				r := &client.Record{Topic: clusterTopic, Key: fmt.Appendf(nil, "k%d", prng.IntN(64)), Value: []byte(v)}
				p.Produce(prodCtx, r, func(r *client.Record, err error) { h.complete(o, r, err) })
			}
		})
	}

	// On an early return, stop the producing goroutines before the
	// deferred client closes run.
	defer func() { stopProducing(); wg.Wait() }()

	// Let every partition see acknowledged traffic before the first kill.
	if err := waitFor(ctx, 20*time.Second, func(context.Context) error {
		for p := range int32(clusterPartitions) {
			if _, ok := h.resumedAfter(p, began); !ok {
				return fmt.Errorf("no produce acknowledged on partition %d yet", p)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	var failovers []time.Duration
	hitController := false
	for k := range kills {
		d, err := adm.DescribeTopic(ctx, clusterTopic)
		if err != nil {
			t.Fatalf("kill %d: describe: %v", k+1, err)
		}
		md, err := adm.Metadata(ctx)
		if err != nil {
			t.Fatalf("kill %d: metadata: %v", k+1, err)
		}
		target := int32(rng.IntN(clusterPartitions))
		if !hitController && k >= kills/2 {
			// Make sure some kill also takes the metadata leader down.
			for _, pd := range d.Partitions {
				if pd.Leader == md.ControllerID {
					target = pd.Partition
				}
			}
		}
		victim := c.node(d.Partitions[target].Leader)
		if victim == nil || victim.proc == nil {
			t.Fatalf("kill %d: partition %d's leader %d is not a running node", k+1, target, d.Partitions[target].Leader)
		}
		var led []int32
		for _, pd := range d.Partitions {
			if pd.Leader == victim.id {
				led = append(led, pd.Partition)
			}
		}
		hitController = hitController || victim.id == md.ControllerID
		killedAt := time.Now()
		c.kill9(victim)
		t.Logf("kill %d at +%s: node %d (pid gone), leader of partitions %v (chosen: %d), controller was %d",
			k+1, killedAt.Sub(began).Round(time.Millisecond), victim.id, led, target, md.ControllerID)

		select {
		case <-time.After(downtime):
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
		restartAt := time.Now()
		c.start(victim)
		if err := waitFor(ctx, 45*time.Second, func(ctx context.Context) error { return c.clusterReady(ctx) }); err != nil {
			t.Fatalf("kill %d: node %d not back alive: %v", k+1, victim.id, err)
		}
		alive := time.Since(restartAt)
		if err := waitFor(ctx, 45*time.Second, func(ctx context.Context) error {
			_, err := topicHealthy(ctx, adm, clusterTopic)
			return err
		}); err != nil {
			t.Fatalf("kill %d: node %d not back in sync: %v", k+1, victim.id, err)
		}
		back := time.Since(restartAt)

		for _, p := range led {
			var resumed time.Time
			err := waitFor(ctx, failoverBound+5*time.Second, func(context.Context) error {
				var ok bool
				if resumed, ok = h.resumedAfter(p, killedAt); !ok {
					return fmt.Errorf("no produce on partition %d succeeded since the kill", p)
				}
				return nil
			})
			if err != nil {
				t.Errorf("kill %d (node %d): %v", k+1, victim.id, err)
				continue
			}
			f := resumed.Sub(killedAt)
			failovers = append(failovers, f)
			t.Logf("kill %d: partition %d: produce succeeded again %s after the kill", k+1, p, f.Round(time.Millisecond))
			if f > failoverBound {
				t.Errorf("kill %d: partition %d took %s to accept produce again (bound %s)", k+1, p, f, failoverBound)
			}
		}
		t.Logf("kill %d: node %d alive %s and in sync %s after its restart", k+1, victim.id, alive.Round(time.Millisecond), back.Round(time.Millisecond))
	}
	t.Logf("failover (kill -9 of a leader until produce on its partitions succeeds again): %s", durationStats(failovers))

	// Stop producing, deliver what is buffered, and let the cluster settle.
	stopProducing()
	wg.Wait()
	for _, p := range producers {
		cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
		if err := p.Close(cctx); err != nil {
			t.Errorf("close producer: %v", err)
		}
		ccancel()
	}
	var desc client.TopicDetail
	if err := waitFor(ctx, 45*time.Second, func(ctx context.Context) error {
		if err := c.clusterReady(ctx); err != nil {
			return err
		}
		desc, err = topicHealthy(ctx, adm, clusterTopic)
		return err
	}); err != nil {
		t.Fatalf("cluster did not settle: %v", err)
	}
	hw := map[int32]int64{}
	for _, pd := range desc.Partitions {
		hw[pd.Partition] = pd.HighWatermark
	}
	t.Logf("settled at +%s: high watermarks %v", time.Since(began).Round(time.Millisecond), hw)

	// Read every partition from its leader up to the high watermark.
	served := map[int32][]diskRecord{}
	for p := range int32(clusterPartitions) {
		served[p] = readPartition(t, ctx, admin, p, hw[p])
	}
	h.check(t, served)

	// Stop every broker cleanly and compare the replicas' on-disk logs.
	c.stopAll()
	// Kills, restarts and clean stops are routine: nothing at error level.
	if errs := c.errorLines(); len(errs) > 0 {
		t.Errorf("%d lines logged at error level; the first ones:\n%s", len(errs), strings.Join(errs[:min(len(errs), 10)], "\n"))
	}
	for p := range int32(clusterPartitions) {
		var first []byte
		for _, nd := range c.nodes {
			recs, raw, next, err := readReplicaLog(nd.dir, clusterTopic, p, hw[p])
			if err != nil {
				t.Errorf("node %d partition %d: %v", nd.id, p, err)
				continue
			}
			if next < hw[p] {
				t.Errorf("node %d partition %d: log ends at %d, below the high watermark %d it was in sync for", nd.id, p, next, hw[p])
			}
			if err := sameRecords(served[p], recs); err != nil {
				t.Errorf("partition %d: node %d's log (end %d) differs from what the leader served up to %d: %v", p, nd.id, next, hw[p], err)
			}
			if first == nil {
				first = raw
			} else if !slices.Equal(first, raw) {
				t.Errorf("partition %d: node %d's batches are not byte-identical to node 1's below %d", p, nd.id, hw[p])
			}
		}
	}
	t.Logf("done in %s", time.Since(began).Round(time.Millisecond))
}

// readPartition reads partition p from its leader, from the earliest offset
// up to hw, and returns its records in offset order.
func readPartition(t *testing.T, ctx context.Context, cl *client.Client, p int32, hw int64) []diskRecord {
	t.Helper()
	cs, err := cl.NewConsumer(clusterTopic, client.Partitions(p), client.StartAt(client.Earliest()), client.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var out []diskRecord
	for {
		pos, started := cs.Positions()[client.TopicPartition{Topic: clusterTopic, Partition: p}]
		if started && pos >= hw {
			break
		}
		recs, err := cs.Poll(ctx)
		if err != nil {
			t.Fatalf("read partition %d at %d (high watermark %d): %v", p, pos, hw, err)
		}
		for _, r := range recs {
			if r.Offset >= hw {
				continue
			}
			if n := len(out); n == 0 && r.Offset != 0 || n > 0 && r.Offset != out[n-1].offset+1 {
				t.Errorf("partition %d: offset %d follows %d records, the last at %v", p, r.Offset, n, out[max(n-1, 0):])
			}
			out = append(out, diskRecord{r.Offset, r.Key, r.Value, r.Headers, r.Timestamp.UnixMilli()})
		}
	}
	return out
}
