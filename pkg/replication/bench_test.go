package replication

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"
)

// BenchmarkApply measures Apply throughput through a 3-replica group on
// raft.InmemTransport (entries copied as a real transport would), with
// real files and an fsync per StoreLogs on every replica. Batches are 100
// records of 1 KiB; -cpu sets nothing here, callers is the concurrency.
func BenchmarkApply(b *testing.B) {
	for _, tc := range []struct {
		callers int
		fsync   bool
		cache   bool
	}{{1, true, true}, {16, true, true}, {64, true, true}, {64, true, false}, {64, false, true}} {
		name := fmt.Sprintf("callers=%d/fsync=%v/cache=%v", tc.callers, tc.fsync, tc.cache)
		b.Run(name, func(b *testing.B) {
			c := newBenchCluster(b, tc.fsync, tc.cache)
			l := c.leader()
			batch := testBatch(b, "bench", 100, 1024)
			b.SetBytes(int64(len(batch)))
			b.ResetTimer()
			var n atomic.Int64
			n.Store(int64(b.N))
			done := make(chan error, tc.callers)
			for range tc.callers {
				go func() {
					for n.Add(-1) >= 0 {
						if _, _, err := l.g.Apply(context.Background(), [][]byte{bytes.Clone(batch)}); err != nil {
							done <- err
							return
						}
					}
					done <- nil
				}()
			}
			for range tc.callers {
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
		})
	}
}

func newBenchCluster(b *testing.B, fsync, cache bool) *cluster {
	// The production raft configuration: the fast test timeouts make
	// elections flap when three replicas fsync on one disk.
	c := &cluster{t: b, fsync: fsync, cacheOff: !cache, raftConf: DefaultRaftConfig}
	return c.start(3)
}
