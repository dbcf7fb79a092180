package chaos

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stratalog/strata/pkg/client"
)

// TestMetadataWhileAMoveIsStuck: an RF-2 partition whose replicas are a
// stopped broker and a live one has no quorum, so a move off the stopped
// broker cannot finish; every other broker must keep answering Metadata
// meanwhile. The membership scenario (seed 1796649389064878389, before the
// decommission fix) left such a partition, and then one broker did not
// answer Metadata within 10 s for two minutes. Run with
// STRATA_CHAOS_REPRO=1 (about a minute, four brokers); not in CI until it
// reproduces.
func TestMetadataWhileAMoveIsStuck(t *testing.T) {
	if os.Getenv("STRATA_CHAOS_REPRO") == "" {
		t.Skip("a reproduction attempt: STRATA_CHAOS_REPRO=1 runs it")
	}
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
	n4, err := c.AddNode()
	if err != nil {
		t.Fatal(err)
	}
	if err := waitFor(ctx, 60*time.Second, c.Ready); err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(c.Addrs()[:3], client.RetryTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := cl.Admin()
	if _, err := adm.CreateTopic(ctx, "pair", 1, 2, nil); err != nil {
		t.Fatal(err)
	}
	if err := adm.MovePartition(ctx, "pair", 0, []uint32{4, 2}, nil); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(ctx, 60*time.Second, func(ctx context.Context) error { return topicsHealthy(ctx, adm, []string{"pair"}) }); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(n4); err != nil {
		t.Fatal(err)
	}
	c.MarkRemoved(n4)
	moveCtx, moveCancel := context.WithTimeout(ctx, 60*time.Second)
	defer moveCancel()
	moved := make(chan error, 1)
	go func() { moved <- adm.MovePartition(moveCtx, "pair", 0, []uint32{2, 1}, nil) }()
	deadline := time.Now().Add(45 * time.Second)
	for time.Now().Before(deadline) {
		for _, nd := range c.Members() {
			mctx, mcancel := context.WithTimeout(ctx, 10*time.Second)
			one, err := client.New([]string{nd.API}, client.RetryTimeout(0))
			if err == nil {
				began := time.Now()
				_, err = one.Admin().Metadata(mctx)
				if took := time.Since(began); err == nil && took > 2*time.Second {
					err = fmt.Errorf("took %s", took)
				}
				one.Close()
			}
			mcancel()
			if err != nil {
				dir, _ := os.MkdirTemp("", "strata-chaos-stuck")
				t.Errorf("%s: Metadata while the move of pair/0 is stuck: %v (goroutines: %v)", nd, err, c.DumpGoroutines(dir))
				return
			}
		}
		select {
		case err := <-moved:
			t.Logf("the move ended: %v", err)
			return
		case <-time.After(time.Second):
		}
	}
	t.Logf("every broker answered Metadata for 45 s while the move was stuck")
}
