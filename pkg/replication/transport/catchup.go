package transport

import "github.com/hashicorp/raft"

// Catch-up in pipeline mode.
//
// Raft replicates to a follower in pipeline mode once one AppendEntries
// to it succeeded, and a pipeline sends one request per new entry the
// leader appends (of up to MaxAppendEntries entries, from where the
// follower is), or one per CommitTimeout when nothing is appended. A
// follower that was paused for a second or two, too briefly for its
// pipeline to fail, is then far behind in pipeline mode: without new
// writes it got 64 entries every 20-40 s (CommitTimeout), 2-3 MB/s. The
// transport sees when a pipelined request was full (raft capped it, so the
// follower is still behind) and tells the group, which appends a barrier
// to make raft send the next one (replication/catchup.go).

// catchUp is what SetCatchUp set.
type catchUp struct {
	full int
	fn   func()
}

// SetCatchUp asks the Transport to call fn (which must not block) when a
// pipelined AppendEntries that carried at least full entries succeeded.
// full is raft's MaxAppendEntries; fn nil stops the calls.
func (t *Transport) SetCatchUp(full int, fn func()) {
	if fn == nil {
		t.catchUp.Store(nil)
		return
	}
	t.catchUp.Store(&catchUp{full: full, fn: fn})
}

// delivered runs after raft took a pipelined future to peer.
func (t *Transport) delivered(peer raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse, err error) {
	if err != nil {
		t.m.owe(peer, t) // resume.go
		return
	}
	c := t.catchUp.Load()
	if c == nil || !resp.Success || len(args.Entries) < c.full {
		return
	}
	c.fn()
}
