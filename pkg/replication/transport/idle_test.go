package transport

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// TestIdleCost reports what 300 idle groups of 3 replicas cost on one
// machine: goroutines and heap per replica (raft's included, and the
// transport's alone) and the RPC rate at rest. It asserts only the
// transport's share: no goroutine per group, and a few hundred bytes.
//
// Raft settings for many groups: a follower gets a heartbeat every
// HeartbeatTimeout/10 to 2*HeartbeatTimeout/10 (150 ms on average here) and
// an AppendEntries every CommitTimeout to 2*CommitTimeout (750 ms), so 300
// groups x 2 followers expect ~4,000 + ~800 RPC/s across the 3 brokers.
func TestIdleCost(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("900 rafts: not in -short or -race")
	}
	const groups, nodes = 300, 3

	// The transport's own share, without raft.
	ms := newMuxes(t, nodes, Options{})
	before := heapInUse()
	var trs []*Transport
	for g := 0; g < groups; g++ {
		for _, m := range ms {
			tr, err := m.Transport(fmt.Sprintf("topic-%d/0", g))
			if err != nil {
				t.Fatal(err)
			}
			trs = append(trs, tr)
		}
	}
	transportBytes := float64(heapInUse()-before) / float64(groups*nodes)
	runtime.KeepAlive(trs)
	for _, tr := range trs {
		tr.Close()
	}
	for _, m := range ms {
		m.Close()
	}

	g0 := runtime.NumGoroutine()
	before = heapInUse()
	c := newCluster(t, nodes, groups, timing{
		heartbeat: time.Second, election: time.Second, lease: 500 * time.Millisecond, commit: 500 * time.Millisecond,
	})
	c.waitLeaders(60 * time.Second)
	// Let elections settle and pipelines open.
	waitFor(t, 30*time.Second, "no elections in flight", func() bool {
		for _, g := range c.groups {
			n := 0
			for _, r := range c.rafts[g] {
				if r.State() == 1 /* Candidate */ {
					return false
				}
				if r.State() == 2 /* Leader */ {
					n++
				}
			}
			if n != 1 {
				return false
			}
		}
		return true
	})
	var reqs0, hbs0 uint64
	for _, m := range c.muxes {
		reqs0 += m.served.requests.Load()
		hbs0 += m.served.heartbeats.Load()
	}
	start := time.Now()
	time.Sleep(3 * time.Second) // the measurement window, not a wait for a condition
	elapsed := time.Since(start).Seconds()
	var reqs, hbs uint64
	for _, m := range c.muxes {
		reqs += m.served.requests.Load()
		hbs += m.served.heartbeats.Load()
	}
	replicas := float64(groups * nodes)
	all := runtime.NumGoroutine() - g0
	mine := transportGoroutines()
	heap := float64(heapInUse()-before) / replicas

	t.Logf("%d groups x %d replicas, idle:", groups, nodes)
	t.Logf("  goroutines: %.2f per replica in all (raft's included), transport's own %d in all (%.3f per replica)", float64(all)/replicas, mine, float64(mine)/replicas)
	t.Logf("  heap in use: %.0f B per replica with raft and in-memory stores; transport's share %.0f B per group Transport", heap, transportBytes)
	t.Logf("  idle RPCs: %.0f/s across the cluster (%.0f/s heartbeats), %.1f/s per group", float64(reqs-reqs0)/elapsed, float64(hbs-hbs0)/elapsed, float64(reqs-reqs0)/elapsed/groups)

	if transportBytes > 1024 {
		t.Errorf("a group's Transport costs %.0f bytes, want < 1 KiB", transportBytes)
	}
	// Per connection: accept loop per Mux, a reader per connection (at most
	// 2 directions x 2 peers x ConnsPerPeer), plus requests in flight.
	if mine > 200 {
		t.Errorf("the transport runs %d goroutines for %d groups at rest: per-group goroutines?", mine, groups*nodes)
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// transportGoroutines counts goroutines running this package's code.
func transportGoroutines() int {
	buf := make([]byte, 64<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("pkg/replication/transport.(*")) && !bytes.Contains(g, []byte("transportGoroutines")) {
			n++
		}
	}
	return n
}
