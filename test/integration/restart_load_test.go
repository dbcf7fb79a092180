package integration

import (
	"context"
	"crypto/sha256"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBrokerRestartUnderLoad kills a broker (SIGKILL) of a three-broker
// cluster while several producers write 1 KiB records in 1 MiB batches to
// a 3-partition RF-3 topic, restarts it while the load goes on, and checks
// that it comes back in sync under that load, that every acknowledged
// record is read back where its acknowledgement said, and that all three
// replicas of every partition hold the same bytes (issue 10, items 1 and
// 9: a restarted broker is a follower far behind, and used to stay out of
// sync for good once it was more than a transport frame behind).
//
// The producers are paced in bursts of a batch's worth, so batches are
// full (1 MiB) as under sustained load, at 30 MB/s in all: the broker is
// down long enough (10 s) for each partition to fall more than 64 MiB (a
// transport frame) behind, and the load leaves room for it to catch up
// while the test client runs under the race detector.
//
// STRATA_IT_SEED picks the broker to kill (printed), STRATA_IT_LOAD_MBPS
// the producers' total rate in 10^6 value bytes a second (default 30; 0
// as fast as they can), STRATA_IT_LOAD_DOWN how long the broker stays
// down (default 10s).
func TestBrokerRestartUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three broker processes and kills one under load; skipped with -short")
	}
	const topic, partitions, producers = "load", 3, 4
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("STRATA_IT_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("STRATA_IT_SEED: %v", err)
		}
		seed = v
	}
	rate := envInt(t, "STRATA_IT_LOAD_MBPS", 30, 0, 10_000)
	down := envDurations(t, "STRATA_IT_LOAD_DOWN", []time.Duration{10 * time.Second}, 5*time.Minute)[0]
	const before, after = 3 * time.Second, 3 * time.Second
	spec := loadSpec{topic: topic, producers: producers, perSecond: float64(rate) * 1e6 / smallRecord / producers, burst: 1024}
	t.Logf("params: seed %d (STRATA_IT_SEED=%d repeats it); %d producers, 1 KiB records, client defaults (1 MiB batches, acks quorum), %d MB/s in all (0: unpaced) in bursts of 1024 records; %d partitions RF 3; load %s, kill, down %s, restart, in sync, load %s more",
		seed, seed, producers, rate, partitions, before, down, after)
	rng := rand.New(rand.NewPCG(seed, 0))

	ctx, cancel := context.WithTimeout(context.Background(), down+8*time.Minute)
	defer cancel()
	began := time.Now()
	c := newTestCluster(t, 3)
	if err := waitFor(ctx, 60*time.Second, func(ctx context.Context) error { return c.clusterReady(ctx) }); err != nil {
		t.Fatalf("cluster not ready: %v", err)
	}
	cl := c.client(c.nodes...)
	adm := cl.Admin()
	if _, err := adm.CreateTopic(ctx, topic, partitions, 3, nil); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(ctx, 30*time.Second, func(ctx context.Context) error {
		_, err := topicHealthy(ctx, adm, topic)
		return err
	}); err != nil {
		t.Fatalf("topic not healthy: %v", err)
	}

	book := &ackBook{}
	ld := runLoad(ctx, c.client(c.nodes...), book, spec)
	defer ld.stop(ctx)
	loadBegan := time.Now()
	select {
	case <-time.After(before):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	n0, b0 := book.count()
	t.Logf("load before the kill: %d records, %.1f MB acknowledged in %s: %.1f MB/s with 3 replicas in sync",
		n0, mb(b0), time.Since(loadBegan).Round(time.Millisecond), mb(b0)/time.Since(loadBegan).Seconds())

	d, err := adm.DescribeTopic(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	victim := c.nodes[rng.IntN(len(c.nodes))]
	var led []int32
	for _, pd := range d.Partitions {
		if pd.Leader == victim.id {
			led = append(led, pd.Partition)
		}
	}
	killed := time.Now()
	c.kill9(victim)
	t.Logf("killed node %d at +%s, leader of partitions %v", victim.id, killed.Sub(began).Round(time.Millisecond), led)
	select {
	case <-time.After(down):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	restarted := time.Now()
	_, bDown := book.count()
	c.start(victim)
	if err := waitFor(ctx, 3*time.Minute, func(ctx context.Context) error {
		if _, err := topicHealthy(ctx, adm, topic); err != nil {
			return err
		}
		return c.clusterReady(ctx)
	}); err != nil {
		t.Fatalf("node %d, restarted under load, not back in sync: %v", victim.id, err)
	}
	_, bSync := book.count()
	t.Logf("node %d back in sync %s after its restart, under load (%.1f MB acknowledged while it was down, %.1f MB while it caught up)",
		victim.id, time.Since(restarted).Round(time.Millisecond), mb(bDown-b0), mb(bSync-bDown))
	select {
	case <-time.After(after):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	if err := ld.stop(ctx); err != nil {
		t.Error(err)
	}
	acks, bytes, failed, firstFail := book.snapshot()
	if failed > 0 {
		t.Errorf("%d produces failed (delivery timeout 30 s), the first: %v", failed, firstFail)
	}
	t.Logf("load done: %d records, %.1f MB acknowledged in %s", len(acks), mb(bytes), time.Since(loadBegan).Round(time.Millisecond))

	hw := map[int32]int64{}
	if err := waitFor(ctx, 60*time.Second, func(ctx context.Context) error {
		d, err := topicHealthy(ctx, adm, topic)
		if err != nil {
			return err
		}
		for _, pd := range d.Partitions {
			hw[pd.Partition] = pd.HighWatermark
		}
		return nil
	}); err != nil {
		t.Fatalf("topic did not settle: %v", err)
	}
	rc := verifyAcked(t, ctx, cl, topic, hw, acks)
	t.Logf("read back %d records (%.1f MB) up to %v in %s: every one of %d acknowledged at its offset unless reported above (at least once: %d duplicates, %d never acknowledged)",
		rc.read, mb(rc.readBytes), hw, rc.took.Round(time.Millisecond), len(acks), rc.duplicates, rc.unacked)

	// The three replicas of each partition hold the same batches below
	// the high watermark: by the brokers' own comparison (VerifyPartition,
	// CRC-32C of every batch on each replica), and, independently, read
	// from disk for the partitions the killed broker led (its copy lost
	// a torn tail at the kill and was written back by its successor).
	comparing := time.Now()
	for p := range int32(partitions) {
		vr, err := adm.VerifyPartition(ctx, topic, p)
		if err != nil {
			t.Fatalf("verify partition %d: %v", p, err)
		}
		for _, r := range vr.Replicas {
			if r.Error != "" {
				t.Errorf("verify partition %d: replica %d: %s", p, r.NodeID, r.Error)
			}
		}
		if !vr.Agree || len(vr.Replicas) != 3 || vr.ToOffset < hw[p] {
			t.Errorf("verify partition %d: %d replicas agree=%v over [%d, %d) (high watermark %d), first difference at %d",
				p, len(vr.Replicas), vr.Agree, vr.FromOffset, vr.ToOffset, hw[p], vr.FirstDifference)
		}
	}
	t.Logf("the brokers' VerifyPartition: all three replicas of %d partitions agree below their high watermarks (%s)", partitions, time.Since(comparing).Round(time.Millisecond))
	comparing = time.Now()
	c.stopAll()
	for _, p := range led {
		var first [sha256.Size]byte
		firstNode := uint32(0)
		for _, nd := range c.nodes {
			sum, next, err := hashReplicaLog(nd.dir, topic, p, hw[p])
			if err != nil {
				t.Errorf("node %d partition %d: %v", nd.id, p, err)
				continue
			}
			if next < hw[p] {
				t.Errorf("node %d partition %d: log ends at %d, below the high watermark %d", nd.id, p, next, hw[p])
			}
			if firstNode == 0 {
				first, firstNode = sum, nd.id
			} else if sum != first {
				t.Errorf("partition %d: node %d's batches below %d differ from node %d's", p, nd.id, hw[p], firstNode)
			}
		}
	}
	// Kills, pauses and restarts are routine: nothing at error level.
	if errs := c.errorLines(); len(errs) > 0 {
		t.Errorf("%d lines logged at error level; the first ones:\n%s", len(errs), strings.Join(errs[:min(len(errs), 10)], "\n"))
	}
	t.Logf("brokers stopped and partitions %v compared on disk in %s; done in %s", led, time.Since(comparing).Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}
