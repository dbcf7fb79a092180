package broker

import (
	"sync"
	"time"
)

// The clock retention and compaction decide by: the brokers' agreed time
// (cluster.AgreedNow, the median of their clocks as sampled), held back
// from jumping forward.
//
// Why: the median is right while at most one of three clocks is wrong, but
// what a broker knows of another's clock is a sample taken up to a few
// seconds ago. In the fault suite node1's clock ran 1h23m ahead for 4.6 s
// and, as soon as it was put back, node3's jumped 1h19m ahead: node3 still
// held a sample of node1 from the skew, so the median of its own clock,
// that sample and node2's was 79 minutes ahead, and as leader it moved
// log/2's log start past 2,068 records written minutes before (seed
// 1796678125299213197, retention.ms 1 h).
//
// Real time never jumps, so in a cluster of several brokers this clock
// advances at most as fast as the
// broker's monotonic clock, plus retentionSlew of it to catch up with a
// genuine forward correction (all clocks stepped ahead by NTP: retention
// then lags by the step and catches up at 10% of real time, deleting
// later, never earlier). It follows the agreed time back at once. A
// broker alone uses its own clock as it is: there are no samples of
// others to be stale.
const retentionSlew = 0.1

// retentionClock is that clock's state. Guarded by mu.
type retentionClock struct {
	mu   sync.Mutex
	last time.Time // the last time given
	mono time.Time // when it was given (a time.Now() reading: monotonic)
}

// next returns the clock's time now, given the agreed time and a
// time.Now() reading mono.
func (c *retentionClock) next(agreed, mono time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := steadyTime(c.last, c.mono, agreed, mono)
	c.last, c.mono = t, mono
	return t
}

// steadyTime is next's rule: agreed, but at most last plus the monotonic
// time since (mono - lastMono) and retentionSlew of it. With no last time
// it is agreed.
func steadyTime(last, lastMono, agreed, mono time.Time) time.Time {
	if last.IsZero() {
		return agreed
	}
	elapsed := mono.Sub(lastMono)
	if elapsed < 0 {
		elapsed = 0
	}
	limit := last.Add(elapsed + time.Duration(float64(elapsed)*retentionSlew))
	if agreed.After(limit) {
		return limit
	}
	return agreed
}
