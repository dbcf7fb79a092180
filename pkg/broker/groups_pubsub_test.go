package broker_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/brokertest"
	"github.com/stratalog/strata/pkg/client"
)

// Pub/sub: two groups each receive every record, whatever their sizes;
// within a group (queue), the members split the records.
func TestTwoGroupsEachReceiveEveryRecord(t *testing.T) {
	b := brokertest.StartBroker(t)
	cl := newClient(t, []string{b.APIAddr()})
	if _, err := cl.Admin().CreateTopic(ctx(t), "news", 4, 1, nil); err != nil {
		t.Fatal(err)
	}
	type got struct {
		mu   sync.Mutex
		seen map[string]int
	}
	groups := map[string]*got{"search": {seen: map[string]int{}}, "audit": {seen: map[string]int{}}}
	members := map[string]int{"search": 1, "audit": 2}
	pollCtx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var gcs []*client.GroupConsumer
	for name, n := range members {
		for range n {
			gc, err := cl.NewGroupConsumer(name, client.Topics("news"), client.FetchOpts(client.FetchMaxWait(50*time.Millisecond)))
			if err != nil {
				t.Fatal(err)
			}
			gcs = append(gcs, gc)
			g := groups[name]
			wg.Go(func() {
				for pollCtx.Err() == nil {
					recs, _ := gc.Poll(pollCtx)
					g.mu.Lock()
					for _, r := range recs {
						g.seen[string(r.Value)]++
					}
					g.mu.Unlock()
				}
			})
		}
	}
	// Produce once both groups are stable, so that no rebalance overlaps
	// the reads.
	eventually(t, "both groups stable", func() bool {
		for name, n := range members {
			d, err := cl.Admin().DescribeGroup(ctx(t), name)
			if err != nil || d.State != "stable" || len(d.Members) != n {
				return false
			}
		}
		return true
	})
	produced := produceN(t, cl, "news", "n", 60)
	eventually(t, "both groups read all 60 records", func() bool {
		for _, g := range groups {
			g.mu.Lock()
			n := len(g.seen)
			g.mu.Unlock()
			if n < len(produced) {
				return false
			}
		}
		return true
	})
	stop()
	wg.Wait()
	for _, gc := range gcs {
		if err := gc.Close(ctx(t)); err != nil {
			t.Errorf("close: %v", err)
		}
	}
	for name, g := range groups {
		for v := range produced {
			if g.seen[v] == 0 {
				t.Errorf("group %s never received %s", name, v)
			}
		}
		for v, n := range g.seen {
			if n > 1 {
				t.Errorf("group %s received %s %d times in a stable group", name, v, n)
			}
		}
	}
	t.Logf("%s", fmt.Sprint(len(produced), " records reached each of 2 groups (1 and 2 members)"))
}
