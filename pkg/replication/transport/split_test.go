package transport

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/hashicorp/raft"
)

// bigRequest is an AppendEntries after entry prev with n entries of size
// bytes each, terms rising every 7 entries so that parts' previous terms
// are checked.
func bigRequest(prev uint64, n, size int) *raft.AppendEntriesRequest {
	req := &raft.AppendEntriesRequest{Term: 9, Leader: []byte("x"), PrevLogEntry: prev, PrevLogTerm: termAt(prev), LeaderCommitIndex: prev}
	for i := 1; i <= n; i++ {
		idx := prev + uint64(i)
		req.Entries = append(req.Entries, &raft.Log{Index: idx, Term: termAt(idx), Data: make([]byte, size)})
	}
	return req
}

func termAt(idx uint64) uint64 { return 1 + idx/7 }

func TestSplitAppend(t *testing.T) {
	const limit = 1000
	cases := []struct {
		name  string
		sizes []int
		parts int
	}{
		{"fits", []int{100, 100, 100}, 0},
		{"empty", nil, 0},
		{"exactly the limit", []int{limit - entryOverhead}, 0},
		{"two", []int{500, 500}, 2},
		{"several", []int{300, 300, 300, 300, 300, 300, 300}, 4},
		{"one entry over the limit travels alone", []int{100, 5000, 100}, 3},
		{"large first", []int{5000, 10, 10}, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := &raft.AppendEntriesRequest{Term: 3, PrevLogEntry: 40, PrevLogTerm: 2, LeaderCommitIndex: 39}
			for i, n := range c.sizes {
				req.Entries = append(req.Entries, &raft.Log{Index: 41 + uint64(i), Term: 2 + uint64(i%2), Data: make([]byte, n)})
			}
			parts := splitAppend(req, limit)
			if len(parts) != c.parts {
				t.Fatalf("%d parts, want %d", len(parts), c.parts)
			}
			if parts == nil {
				return
			}
			prev, prevTerm, next := req.PrevLogEntry, req.PrevLogTerm, 0
			for i, p := range parts {
				if len(p.Entries) == 0 {
					t.Fatalf("part %d is empty", i)
				}
				if p.PrevLogEntry != prev || p.PrevLogTerm != prevTerm {
					t.Fatalf("part %d follows (%d,%d), want (%d,%d)", i, p.PrevLogEntry, p.PrevLogTerm, prev, prevTerm)
				}
				if p.Term != req.Term || p.LeaderCommitIndex != req.LeaderCommitIndex {
					t.Fatalf("part %d lost the request's term or commit index", i)
				}
				if n := requestBytes(p); n > limit && len(p.Entries) > 1 {
					t.Fatalf("part %d holds %d bytes in %d entries, limit %d", i, n, len(p.Entries), limit)
				}
				for _, e := range p.Entries {
					if e != req.Entries[next] {
						t.Fatalf("part %d: entry %d out of order", i, e.Index)
					}
					next++
				}
				last := p.Entries[len(p.Entries)-1]
				prev, prevTerm = last.Index, last.Term
			}
			if next != len(req.Entries) {
				t.Fatalf("parts carry %d entries, want %d", next, len(req.Entries))
			}
		})
	}
}

// followerLog is a follower's log as raft checks AppendEntries: a request
// must follow the last entry it holds (or one it holds with the same term).
// It records the largest frame of entries it was sent.
type followerLog struct {
	mu       sync.Mutex
	terms    []uint64 // terms[i] is entry i+1's term
	maxBytes int
	requests int
	refuseAt uint64 // refuse a request carrying this index (0: none)
}

func (f *followerLog) serve(rpc raft.RPC) {
	req, ok := rpc.Command.(*raft.AppendEntriesRequest)
	if !ok {
		rpc.Respond(nil, errors.New("unexpected"))
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	f.maxBytes = max(f.maxBytes, requestBytes(req))
	resp := &raft.AppendEntriesResponse{Term: req.Term, LastLog: uint64(len(f.terms))}
	if req.PrevLogEntry > uint64(len(f.terms)) || (req.PrevLogEntry > 0 && f.terms[req.PrevLogEntry-1] != req.PrevLogTerm) {
		rpc.Respond(resp, nil)
		return
	}
	for _, e := range req.Entries {
		if e.Index == f.refuseAt {
			rpc.Respond(resp, nil)
			return
		}
	}
	f.terms = f.terms[:req.PrevLogEntry]
	for _, e := range req.Entries {
		f.terms = append(f.terms, e.Term)
	}
	resp.LastLog, resp.Success = uint64(len(f.terms)), true
	rpc.Respond(resp, nil)
}

func (f *followerLog) check(t *testing.T, last uint64, limit int) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if uint64(len(f.terms)) != last {
		t.Fatalf("follower holds %d entries, want %d", len(f.terms), last)
	}
	for i, term := range f.terms {
		if term != termAt(uint64(i+1)) {
			t.Fatalf("entry %d has term %d, want %d", i+1, term, termAt(uint64(i+1)))
		}
	}
	if f.maxBytes > limit {
		t.Fatalf("a frame carried %d bytes of entries, limit %d", f.maxBytes, limit)
	}
}

// A request of 48 MiB of entries crosses a transport whose frames are
// limited to 8 MiB, as parts of at most 2 MiB (one 1 MiB entry each); before the split the
// leader's every retry failed with "frame too large".
func TestLargeAppendEntriesTravelInParts(t *testing.T) {
	const limit = 2 << 20
	a, b := pair(t, Options{MaxFrameBytes: 8 << 20, MaxAppendBytes: limit})
	ta := mustTransport(t, a, "g")
	var f followerLog
	serveRaft(t, mustTransport(t, b, "g"), f.serve)

	req := bigRequest(0, 48, 1<<20)
	var resp raft.AppendEntriesResponse
	if err := ta.AppendEntries("2", b.Addr(), req, &resp); err != nil {
		t.Fatal(err)
	}
	if !resp.Success || resp.LastLog != 48 {
		t.Fatalf("answer %+v, want success up to 48", resp)
	}
	f.check(t, 48, limit)
	if f.requests < 24 {
		t.Fatalf("%d requests for 48 MiB in 2 MiB parts", f.requests)
	}

	// A part the follower refuses stops the rest, and raft sees the refusal.
	f.refuseAt = 60
	resp = raft.AppendEntriesResponse{}
	if err := ta.AppendEntries("2", b.Addr(), bigRequest(48, 20, 1<<20), &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Success || resp.LastLog != 59 {
		t.Fatalf("answer %+v, want a refusal after 59", resp)
	}
}

// A pipeline sends large requests as parts in order, followed by the small
// requests sent after them, and answers each future for its whole request.
func TestPipelineLargeRequestsInParts(t *testing.T) {
	const limit = 1 << 20
	a, b := pair(t, Options{MaxFrameBytes: 4 << 20, MaxAppendBytes: limit, PipelineBytes: 6 << 20, PipelineDepth: 4})
	ta := mustTransport(t, a, "g")
	var f followerLog
	serveRaft(t, mustTransport(t, b, "g"), f.serve)
	p, err := ta.AppendEntriesPipeline("2", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	var reqs []*raft.AppendEntriesRequest
	prev := uint64(0)
	for i := 0; i < 12; i++ {
		n, size := 1, 100 // small ones between
		if i%3 == 0 {
			n, size = 10, 512<<10 // 5 MiB: five parts each
		}
		reqs = append(reqs, bigRequest(prev, n, size))
		prev += uint64(n)
	}
	done := make(chan error, 1)
	go func() {
		for i, req := range reqs {
			fut := <-p.Consumer()
			if err := fut.Error(); err != nil {
				done <- err
				return
			}
			last := req.Entries[len(req.Entries)-1].Index
			if fut.Request() != req || !fut.Response().Success || fut.Response().LastLog != last {
				done <- fmt.Errorf("future %d: %+v, want success up to %d", i, fut.Response(), last)
				return
			}
		}
		done <- nil
	}()
	for _, req := range reqs {
		if _, err := p.AppendEntries(req, new(raft.AppendEntriesResponse)); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	f.check(t, prev, limit)
}

// Closing a pipeline fails a request in parts that is still in flight.
func TestPipelineCloseFailsParts(t *testing.T) {
	a, b := pair(t, Options{MaxAppendBytes: 1 << 20})
	ta := mustTransport(t, a, "g")
	mustTransport(t, b, "g") // holds every request
	p, err := ta.AppendEntriesPipeline("2", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	fut, err := p.AppendEntries(bigRequest(0, 4, 1<<20), new(raft.AppendEntriesResponse))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(fut.(*appendFuture).parts); n != 4 {
		t.Fatalf("%d parts, want 4", n)
	}
	p.Close()
	if err := fut.Error(); !errors.Is(err, raft.ErrPipelineShutdown) {
		t.Fatalf("future: %v", err)
	}
}
