package replication

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// applyMany applies n one-record... batches tagged prefix-i from workers
// goroutines and returns the acknowledged values with their offsets.
func applyMany(t *testing.T, c *cluster, prefix string, n, workers, records int) map[string]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	acks := map[string]int64{}
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				tag := prefix + strconv.Itoa(i)
				base, last, err := c.apply(ctx, testBatch(t, tag, records, 20))
				if err != nil {
					errc <- fmt.Errorf("apply %s: %w", tag, err)
					return
				}
				if last-base+1 != int64(records) {
					errc <- fmt.Errorf("apply %s: offsets %d..%d for %d records", tag, base, last, records)
					return
				}
				mu.Lock()
				for r := range records {
					acks[fmt.Sprintf("%s-%d", tag, r)] = base + int64(r)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	return acks
}

// checkAcked checks that every acknowledged value is in the log, at the
// offset it was acknowledged with.
func checkAcked(t *testing.T, log map[string]int64, acks map[string]int64) {
	t.Helper()
	for v, off := range acks {
		got, ok := log[v]
		if !ok {
			t.Fatalf("acknowledged value %s (offset %d) is not in the log", v, off)
		}
		if got != off {
			t.Fatalf("acknowledged value %s at offset %d, found at %d", v, off, got)
		}
	}
}

func TestReplicateConcurrentApplies(t *testing.T) {
	c := newCluster(t, 3)
	acks := applyMany(t, c, "w", 1000, 32, 3)
	hwm := c.leader().g.HighWatermark()
	if hwm != 3000 {
		t.Fatalf("high watermark %d after 1000 batches of 3, want 3000", hwm)
	}
	c.converge(hwm)
	log := values(t, c.sameLogs(hwm)) // also: contiguous offsets, no duplicates
	if len(log) != 3000 {
		t.Fatalf("%d records in the log, want 3000 (raft entries must not show)", len(log))
	}
	checkAcked(t, log, acks)
	for _, nd := range c.nodes {
		if err := nd.g.Log().Verify(); err != nil {
			t.Fatal(err)
		}
		if n := nd.g.Log().NextOffset(); n != hwm {
			t.Fatalf("%s: log end %d, want %d", nd.id, n, hwm)
		}
	}
}

func TestApplyErrors(t *testing.T) {
	c := newCluster(t, 3)
	l := c.leader()
	ctx := context.Background()
	var f *node
	for _, nd := range c.nodes {
		if nd != l {
			f = nd
		}
	}
	waitFor(t, 5*time.Second, "the follower to know the leader", func() bool { id, _ := f.g.Leader(); return id == l.id })
	_, _, err := f.g.Apply(ctx, [][]byte{testBatch(t, "x", 1, 1)})
	var nl *NotLeaderError
	if !errors.As(err, &nl) || nl.LeaderID != l.id || nl.LeaderAddr != l.addr || !errors.Is(err, raft.ErrNotLeader) {
		t.Fatalf("Apply on a follower: %v", err)
	}
	if _, _, err := l.g.Apply(ctx, [][]byte{[]byte("not a batch")}); !errors.Is(err, ErrInvalidBatch) {
		t.Fatalf("Apply of garbage: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := l.g.Apply(cctx, [][]byte{testBatch(t, "x", 1, 1)}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply with a cancelled context: %v", err)
	}
	// Several batches get consecutive offsets.
	base, last, err := l.g.Apply(ctx, [][]byte{testBatch(t, "a", 2, 1), testBatch(t, "b", 3, 1)})
	if err != nil || last-base != 4 {
		t.Fatalf("Apply of 2+3 records: %d..%d, %v", base, last, err)
	}
	g := f.g
	c.stop(f)
	if _, _, err := g.Apply(ctx, [][]byte{testBatch(t, "x", 1, 1)}); !errors.Is(err, ErrShutdown) {
		t.Fatalf("Apply after Close: %v", err)
	}
	if err := g.AddVoter(ctx, "n9", "n9"); !errors.Is(err, ErrShutdown) {
		t.Fatalf("AddVoter after Close: %v", err)
	}
}
