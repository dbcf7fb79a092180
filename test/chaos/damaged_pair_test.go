package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/stratalog/strata/pkg/client"
)

// TestDamagedReplicaOfTwo: the leader of an RF-2 partition is killed, a
// bit of its active segment flipped, and it is started again. Its log lost
// acknowledged entries, so it abstains from votes until it has fetched
// them from a leader; the other replica holds every acknowledged entry
// but needs that vote (2 of 2) to lead. The partition must get a leader.
// Found by the disk scenario (seed 1796651920084598208, moves/1): it
// never did, and the damaged replica logged "failed to make requestVote
// RPC" at error level every election. Fixed: the damaged replica votes
// for a candidate whose log reaches its damage mark's (term, index)
// (pkg/replication/abstain.go). About 30 s.
func TestDamagedReplicaOfTwo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := NewCluster(brokerBin(t), t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := waitFor(ctx, 90*time.Second, c.Ready); err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(c.Addrs(), client.RetryTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := cl.Admin()
	if _, err := adm.CreateTopic(ctx, "pair", 1, 2, nil); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(ctx, 60*time.Second, func(ctx context.Context) error { return topicsHealthy(ctx, adm, []string{"pair"}) }); err != nil {
		t.Fatal(err)
	}
	p := cl.NewProducer()
	for i := range 3000 {
		p.Produce(ctx, &client.Record{Topic: "pair", Value: makeValue(valueID{0, int64(i)}, smallValue)}, func(r *client.Record, err error) {
			if err != nil {
				t.Errorf("produce: %v", err)
			}
		})
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	d, err := adm.DescribeTopic(ctx, "pair")
	if err != nil {
		t.Fatal(err)
	}
	leader := c.Node(d.Partitions[0].Leader)
	if leader == nil {
		t.Fatalf("no leader: %v", d)
	}
	f := &diskFault{c: c, nd: leader, topics: []string{"pair"}, rng: rand.New(rand.NewPCG(1, 2))}
	if err := f.Inject(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("leader %s killed, %s, started again; replicas %v", leader, f.Detail(), d.Partitions[0].Replicas)
	if err := waitFor(ctx, 60*time.Second, func(ctx context.Context) error {
		d, err := adm.DescribeTopic(ctx, "pair")
		if err != nil {
			return err
		}
		if d.Partitions[0].Leader == 0 {
			return fmt.Errorf("pair/0 has no leader (replicas %v)", d.Partitions[0].Replicas)
		}
		return nil
	}); err != nil {
		// Where do the brokers wait? Their goroutines, taken while a
		// DescribeTopic and Ready's Metadata calls wait.
		dir, _ := os.MkdirTemp("", "strata-chaos-pair")
		c.DumpDir = dir
		dctx, dcancel := context.WithTimeout(ctx, 20*time.Second)
		go adm.DescribeTopic(dctx, "pair")
		rerr := c.Ready(dctx)
		dcancel()
		t.Fatalf("after the damage of the leader's log: %v (Ready: %v; goroutines in %s)", err, rerr, dir)
	}
}
