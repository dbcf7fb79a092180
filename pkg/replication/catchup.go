package replication

import (
	"time"

	"github.com/hashicorp/raft"
)

// Catch-up in pipeline mode: the transport reports a pipelined
// AppendEntries that raft filled to MaxAppendEntries, which means the
// follower is still behind (transport/catchup.go). Raft would send it the
// next entries only on the next append, or after CommitTimeout (20-40 s)
// when nothing is written, so a follower paused for a second or two took
// minutes to catch up. nudge appends a barrier, which makes raft send every
// follower in pipeline mode its next request at once: one small raft entry
// (no offsets, never shown to consumers) per MaxAppendEntries entries
// caught up. Nudges coalesce: one is in flight at a time per group.

// catchUpSetter is a transport that reports full pipelined requests.
type catchUpSetter interface {
	SetCatchUp(full int, fn func())
}

// nudgeTimeout bounds how long a nudge waits to enqueue its barrier.
const nudgeTimeout = time.Second

// nudge appends a barrier if this replica leads, unless a nudge is in
// flight. It never blocks; Close waits for the goroutine it starts.
func (g *Group) nudge() {
	if !g.nudging.CompareAndSwap(false, true) {
		return
	}
	if !g.enter() {
		g.nudging.Store(false)
		return
	}
	go func() {
		defer g.leave()
		defer g.nudging.Store(false)
		if g.raft.State() == raft.Leader {
			// Not waited for: raft answers it once applied, or drops it
			// at shutdown; nothing waits on it either way.
			g.raft.Barrier(nudgeTimeout)
		}
	}()
}
