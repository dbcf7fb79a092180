package replication

import (
	"sync"

	"github.com/hashicorp/raft"
)

// recent keeps the last entries stored, so that the two hot readers of a
// just-written entry do not go to disk: the leader's replication
// goroutines (one GetLog per entry per follower) and a follower's FSM
// (which applies what it just stored). It holds a window of contiguous raft
// indexes [lo, hi], bounded by entry count and by bytes, so that many groups
// on a broker cost a known amount of memory.
//
// Rejected alternative: raft.NewLogCache around the store. It bounds
// entries only (256 entries of 1 MiB batches is 256 MiB per group), and its
// DeleteRange empties the whole cache, which raft calls after every
// snapshot: frequent cheap snapshots would keep it cold. Here a prefix
// delete is ignored and a suffix delete drops only the truncated tail.
//
// Cached logs share Data with the raft.Log that StoreLogs was given (after
// the segment rewrote the batch's base offset); nobody writes them
// afterwards.
type recent struct {
	mu       sync.RWMutex
	ring     []raft.Log // entry i at ring[i%len(ring)]
	lo, hi   uint64     // window; empty when hi < lo
	bytes    int
	maxBytes int
}

func newRecent(entries, maxBytes int) *recent {
	return &recent{ring: make([]raft.Log, max(entries, 0)), lo: 1, maxBytes: maxBytes}
}

func (c *recent) get(index uint64, out *raft.Log) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if len(c.ring) == 0 || index < c.lo || index > c.hi {
		return false
	}
	*out = c.ring[index%uint64(len(c.ring))]
	return true
}

// add caches logs just stored, contiguous and in order.
func (c *recent) add(logs []*raft.Log) {
	if len(c.ring) == 0 || len(logs) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hi >= c.lo && logs[0].Index != c.hi+1 {
		c.clear()
	}
	if c.hi < c.lo {
		c.lo, c.hi = logs[0].Index, logs[0].Index-1
	}
	n := uint64(len(c.ring))
	for _, l := range logs {
		if c.hi-c.lo+1 == n {
			c.dropFirst()
		}
		c.hi++
		c.ring[c.hi%n] = *l
		c.bytes += len(l.Data)
		for c.bytes > c.maxBytes && c.lo < c.hi {
			c.dropFirst()
		}
	}
}

func (c *recent) dropFirst() {
	slot := &c.ring[c.lo%uint64(len(c.ring))]
	c.bytes -= len(slot.Data)
	*slot = raft.Log{}
	c.lo++
}

// truncateAfter drops cached entries above index.
func (c *recent) truncateAfter(index uint64) {
	if len(c.ring) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.hi >= c.lo && c.hi > index {
		slot := &c.ring[c.hi%uint64(len(c.ring))]
		c.bytes -= len(slot.Data)
		*slot = raft.Log{}
		c.hi--
	}
}

func (c *recent) clear() {
	for c.hi >= c.lo {
		c.dropFirst()
	}
	c.lo, c.hi, c.bytes = 1, 0, 0
}

// dropBefore drops cached entries below index (their segments were
// deleted: serving them would hide that from raft).
func (c *recent) dropBefore(index uint64) {
	if len(c.ring) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.hi >= c.lo && c.lo < index {
		c.dropFirst()
	}
}

// reset empties the cache.
func (c *recent) reset() {
	if len(c.ring) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clear()
}
