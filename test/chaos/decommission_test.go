package chaos

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/pkg/client"
)

// TestDecommissionWhileTopicsAreCreated: topics created while a broker is
// decommissioned may be placed on it (it is alive and the least loaded);
// when the decommission reports done, no partition may list it. Found by
// the membership scenario: DecommissionBroker planned its moves once, a
// topic created (or a partition moved) meanwhile kept a replica on the
// broker, and once the broker was stopped an RF-2 partition had no
// leader. CI cost: one 4-broker cluster, about 20 s.
func TestDecommissionWhileTopicsAreCreated(t *testing.T) {
	if testing.Short() {
		t.Skip("starts broker processes; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := NewCluster(brokerBin(t), t.TempDir(), 4)
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
	// Enough partitions on node 4 that moving them off takes seconds.
	if _, err := adm.CreateTopic(ctx, "big", 24, 3, nil); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(ctx, 60*time.Second, func(ctx context.Context) error { return topicsHealthy(ctx, adm, []string{"big"}) }); err != nil {
		t.Fatal(err)
	}
	const victim = 4
	began := time.Now()
	var wg sync.WaitGroup
	var created []string
	wg.Go(func() {
		// Five topics in the decommission's first moments, then stop, so
		// every one exists well before it ends.
		for i := range 5 {
			name := fmt.Sprintf("late-%d", i)
			if _, err := adm.CreateTopic(ctx, name, 4, 3, nil); err != nil {
				t.Errorf("create %s: %v", name, err)
				return
			}
			created = append(created, name)
		}
	})
	var steps int
	err = adm.DecommissionBroker(ctx, victim, func(client.MoveProgress) { steps++ })
	wg.Wait()
	if err != nil {
		t.Fatalf("decommission: %v", err)
	}
	t.Logf("decommission of node %d took %s (%d progress messages); %d topics created meanwhile", victim, time.Since(began).Round(time.Millisecond), steps, len(created))
	for _, topic := range append([]string{"big"}, created...) {
		d, err := adm.DescribeTopic(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range d.Partitions {
			if slices.Contains(p.Replicas, victim) {
				t.Errorf("%s/%d still lists node %d (replicas %v) after its decommission reported done", topic, p.Partition, victim, p.Replicas)
			}
		}
	}
}
