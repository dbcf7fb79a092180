package transport

import (
	"bytes"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestIdleCost reports what 300 idle groups of 3 replicas cost on one
// machine: goroutines and heap per replica (raft's included, and the
// transport's alone), the RPC rate at rest and the CPU it takes, with
// heartbeat rounds unpaced and paced as the broker paces them. It asserts
// only the transport's share: no goroutine per group, and a few hundred
// bytes.
//
// Raft settings for many groups: a follower gets a heartbeat every
// HeartbeatTimeout/10 to 2*HeartbeatTimeout/10 (150 ms on average here) and
// an AppendEntries every CommitTimeout to 2*CommitTimeout (750 ms), so 300
// groups x 2 followers expect ~4,000 heartbeats + ~800 RPC/s across the 3
// brokers unpaced; paced at 250ms, 2,400 heartbeats/s in 24 rounds/s.
func TestIdleCost(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("900 rafts: not in -short or -race")
	}
	const groups, nodes = 300, 3

	// The transport's own share, without raft.
	ms := newMuxes(t, nodes, Options{})
	heap0 := heapInUse()
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
	transportBytes := float64(heapInUse()-heap0) / float64(groups*nodes)
	runtime.KeepAlive(trs)
	for _, tr := range trs {
		tr.Close()
	}
	for _, m := range ms {
		m.Close()
	}

	// Raft's idle traffic and CPU, with heartbeat rounds unpaced and paced
	// at a quarter of the heartbeat timeout (the broker's setting).
	var mine int
	for _, run := range []struct {
		name string
		opts Options
	}{
		{"rounds unpaced", Options{}},
		{"rounds every 250ms", Options{HeartbeatInterval: 250 * time.Millisecond}},
	} {
		g0 := runtime.NumGoroutine()
		before := heapInUse()
		c := newClusterOpts(t, nodes, groups, timing{
			heartbeat: time.Second, election: time.Second, lease: 500 * time.Millisecond, commit: 500 * time.Millisecond,
		}, run.opts)
		c.waitLeaders(60 * time.Second)
		// Let elections settle and pipelines open.
		waitFor(t, 30*time.Second, "no elections in flight", func() bool {
			for _, g := range c.groups {
				n := 0
				for _, r := range c.rafts[g] {
					if r.State() == raft.Candidate {
						return false
					}
					if r.State() == raft.Leader {
						n++
					}
				}
				if n != 1 {
					return false
				}
			}
			return true
		})
		var reqs0, hbs0, rounds0 uint64
		for _, m := range c.muxes {
			reqs0 += m.served.requests.Load()
			hbs0 += m.served.heartbeats.Load()
			rounds0 += m.served.rounds.Load()
		}
		cpu0 := cpuTime()
		start := time.Now()
		time.Sleep(5 * time.Second) // the measurement window, not a wait for a condition
		elapsed := time.Since(start).Seconds()
		cpu := (cpuTime() - cpu0).Seconds()
		var reqs, hbs, rounds uint64
		for _, m := range c.muxes {
			reqs += m.served.requests.Load()
			hbs += m.served.heartbeats.Load()
			rounds += m.served.rounds.Load()
		}
		replicas := float64(groups * nodes)
		all := runtime.NumGoroutine() - g0
		mine = transportGoroutines()
		heap := float64(heapInUse()-before) / replicas

		t.Logf("%d groups x %d replicas, idle, %s:", groups, nodes, run.name)
		t.Logf("  goroutines: %.2f per replica in all (raft's included), transport's own %d in all (%.3f per replica)", float64(all)/replicas, mine, float64(mine)/replicas)
		t.Logf("  heap in use: %.0f B per replica with raft and in-memory stores; transport's share %.0f B per group Transport", heap, transportBytes)
		t.Logf("  idle: %.0f requests/s across the cluster (%.0f/s heartbeat rounds carrying %.0f heartbeats/s), %.1f heartbeats/s per group", float64(reqs-reqs0)/elapsed, float64(rounds-rounds0)/elapsed, float64(hbs-hbs0)/elapsed, float64(hbs-hbs0)/elapsed/groups)
		t.Logf("  CPU: %.1f%% of a core for the %d brokers in this process (%.1f%% each)", 100*cpu/elapsed, nodes, 100*cpu/elapsed/nodes)
		c.close()
	}

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

// transportGoroutines counts goroutines this package started (raft's
// heartbeat goroutines waiting for a round run its code but are raft's).
func transportGoroutines() int {
	buf := make([]byte, 64<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("created by github.com/stratalog/strata/pkg/replication/transport.")) && !bytes.Contains(g, []byte("transportGoroutines")) {
			n++
		}
	}
	return n
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
