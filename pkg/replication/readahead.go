package replication

import (
	"sync"

	"github.com/stratalog/strata/pkg/segment"
)

// readAhead serves the raft entries a reader is about to ask for, when it
// reads the log in order below what the cache (recent) holds: raft's scan
// of the log at start (every entry after its snapshot, before it runs), a
// follower applying the committed entries it missed (raft's main loop,
// which answers the leader only afterwards), a leader sending a follower
// what it missed. Entry by entry from disk, a 50 MB log of 1 KiB batches
// took seconds each time, growing with the log: a restarted broker's
// replica opened seconds late and did not answer its leader's first
// AppendEntries within the RPC timeout.
//
// A GetLog that misses the cache right after one that asked for the
// previous index reads readAheadBytes of entries at once
// (segment.Log.ReadEntries) and keeps them here; the next ones are served
// from them. The window is dropped when the log rewrites entries
// (segment.Log.Rewrites: a truncation, a reset, a compacted segment), so a
// window never serves entries the log no longer holds as they were.
//
// Rejected alternative: a cursor left open on the segment file. It would
// follow writes, truncations and segment swaps itself, and the segment log
// has no such reader; a window of copies costs a bounded amount of memory
// per group (readAheadBytes) and needs only the rewrite count.
type readAhead struct {
	mu       sync.Mutex
	entries  []segment.Entry // consecutive raft indexes
	rewrites uint64          // the log's Rewrites when entries were read
	lastMiss uint64          // the last index asked of the window
}

// readAheadBytes bounds one window's entry data.
const readAheadBytes = 256 << 10

// get returns the entry at index from the window, if the log has not
// rewritten entries since it was read (rewrites is its count now). A
// reader past the window's end lets it go.
func (r *readAhead) get(index, rewrites uint64) (e segment.Entry, ok, sequential bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sequential = index == r.lastMiss+1
	r.lastMiss = index
	if len(r.entries) == 0 {
		return segment.Entry{}, false, sequential
	}
	if r.rewrites != rewrites {
		r.entries = nil
		return segment.Entry{}, false, sequential
	}
	first := r.entries[0].Index
	if index < first || index >= first+uint64(len(r.entries)) {
		if index >= first+uint64(len(r.entries)) {
			r.entries = nil
		}
		return segment.Entry{}, false, sequential
	}
	return r.entries[index-first], true, sequential
}

// fill keeps entries, read when the log's rewrite count was rewrites.
func (r *readAhead) fill(entries []segment.Entry, rewrites uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.entries, r.rewrites = entries, rewrites
}

// readEntry reads the entry at index through the window.
func (s *LogStore) readEntry(index uint64) (segment.Entry, error) {
	e, ok, sequential := s.ahead.get(index, s.log.Rewrites())
	if ok {
		return e, nil
	}
	if !sequential {
		return s.log.ReadEntry(index)
	}
	es, rewrites, err := s.log.ReadEntries(index, readAheadBytes)
	if err != nil {
		return segment.Entry{}, err
	}
	if len(es) > 1 {
		s.ahead.fill(es[1:], rewrites)
	}
	return es[0], nil
}
