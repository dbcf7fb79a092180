package integration

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/pkg/client"
)

// TestGroupWhileMembersComeAndGo runs three broker processes, produces
// continuously to a 6-partition RF-3 topic, and consumes it with a group
// of three members while members leave (gracefully), crash (their client
// is cut off, so their session expires) and new ones join. Afterwards it
// checks at-least-once: every acknowledged record was processed by some
// member, none was skipped; and that the group's committed offsets only
// ever moved forward, as sampled throughout.
func TestGroupWhileMembersComeAndGo(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three broker processes; skipped with -short")
	}
	const (
		topic      = "work"
		partitions = 6
		group      = "workers"
		produceFor = 15 * time.Second
	)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := newTestCluster(t, 3)
	if err := waitFor(ctx, 60*time.Second, func(ctx context.Context) error { return c.clusterReady(ctx) }); err != nil {
		t.Fatalf("cluster not ready: %v", err)
	}
	admin, err := client.New(c.apiAddrs(), client.RetryTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	adm := admin.Admin()
	if _, err := adm.CreateTopic(ctx, topic, partitions, 3, nil); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(ctx, 30*time.Second, func(ctx context.Context) error { _, err := topicHealthy(ctx, adm, topic); return err }); err != nil {
		t.Fatalf("topic not healthy: %v", err)
	}

	// The producer: acknowledged values.
	var ackMu sync.Mutex
	acked := map[string]bool{}
	prodCtx, stopProducing := context.WithTimeout(ctx, produceFor)
	defer stopProducing()
	var wg sync.WaitGroup
	wg.Go(func() {
		p := admin.NewProducer(client.Linger(2 * time.Millisecond))
		defer p.Close(context.Background())
		for i := 0; prodCtx.Err() == nil && i < 200_000; i++ {
			v := fmt.Sprintf("v-%d", i)
			rs := p.ProduceSync(prodCtx, &client.Record{Topic: topic, Key: []byte(v), Value: []byte(v)})
			if rs[0].Err == nil {
				ackMu.Lock()
				acked[v] = true
				ackMu.Unlock()
			}
			time.Sleep(2 * time.Millisecond) // pace: a steady stream, not a flood
		}
	})

	// Members: each its own client; processed values are recorded.
	var procMu sync.Mutex
	processed := map[string]int{}
	type running struct {
		cl   *client.Client
		gc   *client.GroupConsumer
		stop context.CancelFunc
		done chan struct{}
	}
	start := func(name string) *running {
		cl, err := client.New(c.apiAddrs(), client.RetryTimeout(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		gc, err := cl.NewGroupConsumer(group, client.Topics(topic), client.SessionTimeout(3*time.Second),
			client.AutoCommitInterval(300*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		rctx, stop := context.WithCancel(ctx)
		r := &running{cl: cl, gc: gc, stop: stop, done: make(chan struct{})}
		go func() {
			defer close(r.done)
			for rctx.Err() == nil {
				recs, err := gc.Poll(rctx)
				if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, client.ErrClosed) {
					t.Logf("%s: poll: %v", name, err)
				}
				procMu.Lock()
				for _, r := range recs {
					processed[string(r.Value)]++
				}
				procMu.Unlock()
			}
		}()
		return r
	}
	leave := func(r *running) { // graceful: stop polling, commit, leave
		r.stop()
		<-r.done
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		if err := r.gc.Close(cctx); err != nil {
			t.Logf("close: %v", err)
		}
		r.cl.Close()
	}
	crash := func(r *running) { // no leave: its session must expire
		r.stop()
		<-r.done
		r.cl.Close()
	}

	// Committed offsets, sampled: they must never move back.
	var commitErr error
	samples := 0
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var sampler sync.WaitGroup
	sampler.Go(func() {
		last := map[int32]int64{}
		for sampleCtx.Err() == nil {
			offs, err := adm.FetchOffsets(sampleCtx, group)
			if err == nil {
				samples++
				for _, o := range offs {
					if o.Offset < last[o.Partition] && commitErr == nil {
						commitErr = fmt.Errorf("committed offset of %s/%d moved back from %d to %d", o.Topic, o.Partition, last[o.Partition], o.Offset)
					}
					last[o.Partition] = max(last[o.Partition], o.Offset)
				}
			}
			select {
			case <-sampleCtx.Done():
			case <-time.After(100 * time.Millisecond): // sampling
			}
		}
	})

	members := []*running{start("m1"), start("m2"), start("m3")}
	next := 4
	for i := 0; prodCtx.Err() == nil; i++ {
		time.Sleep(3 * time.Second) // let the group work between changes
		if prodCtx.Err() != nil {
			break
		}
		switch i % 3 {
		case 0:
			leave(members[0])
		case 1:
			crash(members[0])
		default:
			leave(members[0])
		}
		members = append(members[1:], start(fmt.Sprintf("m%d", next)))
		next++
	}
	stopProducing()
	wg.Wait()

	// Drain: the last members consume until every acknowledged value is
	// processed.
	ackMu.Lock()
	want := len(acked)
	ackMu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for {
		procMu.Lock()
		missing := 0
		var example string
		for v := range acked {
			if processed[v] == 0 {
				missing++
				example = v
			}
		}
		procMu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged records never processed (e.g. %s)", missing, want, example)
		}
		time.Sleep(200 * time.Millisecond) // the members are draining
	}
	for _, r := range members {
		leave(r)
	}
	stopSampling()
	sampler.Wait()
	if commitErr != nil {
		t.Fatal(commitErr)
	}
	if samples < 10 {
		t.Fatalf("only %d samples of the committed offsets", samples)
	}
	dups := 0
	procMu.Lock()
	for _, n := range processed {
		if n > 1 {
			dups++
		}
	}
	procMu.Unlock()
	d, err := adm.DescribeGroup(ctx, group)
	if err != nil {
		t.Fatalf("describe: %v", err)
	}
	t.Logf("%d records acknowledged, all processed; %d processed more than once (at-least-once across rebalances); %d members started; %d samples of committed offsets, never backwards; group now %s with total lag %d",
		want, dups, next-1, samples, d.State, d.TotalLag)
}
