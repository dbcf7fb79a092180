package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/hashicorp/raft"
)

func sampleBeats() []*beat {
	return []*beat{
		{beatReq: beatReq{group: "orders/0", req: raft.AppendEntriesRequest{
			RPCHeader: raft.RPCHeader{ProtocolVersion: 3, ID: []byte("1"), Addr: []byte("10.0.0.1:9292")},
			Term:      7, Leader: []byte("10.0.0.1:9292"),
		}}},
		{beatReq: beatReq{group: "", req: raft.AppendEntriesRequest{Term: 1}}},
	}
}

func sampleAnswers() []beatAnswer {
	return []beatAnswer{
		{resp: raft.AppendEntriesResponse{
			RPCHeader: raft.RPCHeader{ProtocolVersion: 3, ID: []byte("2"), Addr: []byte("10.0.0.2:9292")},
			Term:      7, LastLog: 42, Success: true, NoRetryBackoff: true,
		}},
		{resp: raft.AppendEntriesResponse{Term: 9}},
		{noGroup: true, err: "transport: no raft group \"x\" on this broker"},
		{err: "boom"},
	}
}

func TestBeatsRoundTrip(t *testing.T) {
	beats := sampleBeats()
	got, err := decodeBeats(appendBeats(nil, beats), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(beats) {
		t.Fatalf("decoded %d heartbeats, want %d", len(got), len(beats))
	}
	for i, b := range beats {
		want := b.beatReq
		// Empty strings decode as empty, not nil, slices.
		for _, p := range []*[]byte{&want.req.RPCHeader.ID, &want.req.RPCHeader.Addr, &want.req.Leader} {
			if *p == nil {
				*p = []byte{}
			}
		}
		if !reflect.DeepEqual(got[i], want) {
			t.Errorf("heartbeat %d: got %+v, want %+v", i, got[i], want)
		}
	}

	answers := sampleAnswers()
	gotA, err := decodeBeatAnswers(appendBeatAnswers(nil, answers), len(answers))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotA, answers) {
		t.Errorf("answers: got %+v, want %+v", gotA, answers)
	}
}

func TestBeatsRejects(t *testing.T) {
	req := appendBeats(nil, sampleBeats())
	ans := appendBeatAnswers(nil, sampleAnswers())
	for n := 0; n < len(req); n++ {
		if _, err := decodeBeats(req[:n], 1<<20); !errors.Is(err, errMalformed) {
			t.Fatalf("request cut at %d of %d bytes: %v, want errMalformed", n, len(req), err)
		}
	}
	for n := 0; n < len(ans); n++ {
		if _, err := decodeBeatAnswers(ans[:n], len(sampleAnswers())); !errors.Is(err, errMalformed) {
			t.Fatalf("answers cut at %d of %d bytes: %v, want errMalformed", n, len(ans), err)
		}
	}
	if _, err := decodeBeats(append(req, 0), 1<<20); !errors.Is(err, errMalformed) {
		t.Fatalf("a trailing byte: %v", err)
	}
	if _, err := decodeBeatAnswers(ans, 3); !errors.Is(err, errMalformed) {
		t.Fatalf("4 answers for 3 heartbeats: %v", err)
	}
	huge := binary.BigEndian.AppendUint32(nil, 1<<31)
	if _, err := decodeBeats(append(huge, make([]byte, 64)...), 1<<20); !errors.Is(err, errMalformed) {
		t.Fatalf("2^31 heartbeats in 64 bytes: %v", err)
	}
	many := make([]*beat, 1000)
	for i := range many {
		many[i] = &beat{}
	}
	if _, err := decodeBeats(appendBeats(nil, many), 64<<10); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("1,000 heartbeats against a 64 KiB decoding budget: %v, want ErrFrameTooLarge", err)
	}
	bad := binary.BigEndian.AppendUint32(nil, 1)
	if _, err := decodeBeatAnswers(append(bad, 9, 0, 0), 1); !errors.Is(err, errMalformed) {
		t.Fatalf("answer status 9: %v", err)
	}
}

// fuzzBeats runs both round decoders over b (FuzzFrame and FuzzBeats),
// with max bounding the memory decoding may take.
func fuzzBeats(b []byte, max int) {
	if beats, err := decodeBeats(b, max); err == nil {
		// What decodes must encode back to the same bytes.
		bs := make([]*beat, len(beats))
		for i := range beats {
			bs[i] = &beat{beatReq: beats[i]}
		}
		if got := appendBeats(nil, bs); string(got) != string(b) {
			panic(fmt.Sprintf("heartbeat round re-encodes differently:\n%x\n%x", b, got))
		}
	}
	// Answers are decoded only for a round this broker sent, so their
	// count is bounded by its own round: here, by max.
	if len(b) >= 4 {
		if n := binary.BigEndian.Uint32(b); uint64(n)*uint64(unsafe.Sizeof(beatAnswer{})) <= uint64(max) {
			_, _ = decodeBeatAnswers(b, int(n))
		}
	}
}

func FuzzBeats(f *testing.F) {
	f.Add(appendBeats(nil, sampleBeats()))
	f.Add(appendBeatAnswers(nil, sampleAnswers()))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	const max = 64 << 10
	f.Fuzz(func(t *testing.T, data []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		fuzzBeats(data, max)
		runtime.ReadMemStats(&after)
		if got := after.TotalAlloc - before.TotalAlloc; got > 2*max+uint64(len(data)) {
			t.Fatalf("decoding a round of %d bytes allocated %d bytes, limit %d", len(data), got, max)
		}
	})
}

// beatHandler answers heartbeats as raft does, recording their terms.
func beatHandler(tr *Transport, seen chan<- uint64) {
	tr.SetHeartbeatHandler(func(rpc raft.RPC) {
		req := rpc.Command.(*raft.AppendEntriesRequest)
		if seen != nil {
			seen <- req.Term
		}
		rpc.Respond(&raft.AppendEntriesResponse{Term: req.Term, LastLog: req.Term * 10, Success: true}, nil)
	})
}

func heartbeat(a *Mux, term uint64) *raft.AppendEntriesRequest {
	return &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, Addr: []byte(a.Addr())},
		Term: term, Leader: []byte(a.Addr())}
}

// TestHeartbeatRounds: heartbeats of many groups to one peer share rounds,
// each reaches its own group's handler and comes back with that group's
// answer, and a group the peer lacks fails alone.
func TestHeartbeatRounds(t *testing.T) {
	a, b := pair(t, Options{HeartbeatInterval: 100 * time.Millisecond})
	const groups = 50
	seen := make([]chan uint64, groups)
	senders := make([]*Transport, groups)
	for i := range groups {
		g := fmt.Sprintf("g%d", i)
		seen[i] = make(chan uint64, 10)
		beatHandler(mustTransport(t, b, g), seen[i])
		senders[i] = mustTransport(t, a, g)
	}
	lonely := mustTransport(t, a, "nobody-has-it")

	var wg sync.WaitGroup
	errs := make([]error, groups)
	resps := make([]raft.AppendEntriesResponse, groups)
	for i := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = senders[i].AppendEntries("2", b.Addr(), heartbeat(a, uint64(100+i)), &resps[i])
		}()
	}
	var lonelyResp raft.AppendEntriesResponse
	lonelyErr := lonely.AppendEntries("2", b.Addr(), heartbeat(a, 1), &lonelyResp)
	wg.Wait()

	if !errors.Is(lonelyErr, ErrUnknownGroup) {
		t.Errorf("heartbeat for a group the peer lacks: %v, want ErrUnknownGroup", lonelyErr)
	}
	for i := range groups {
		if errs[i] != nil {
			t.Fatalf("group %d: %v", i, errs[i])
		}
		term := uint64(100 + i)
		if !resps[i].Success || resps[i].Term != term || resps[i].LastLog != term*10 {
			t.Errorf("group %d got answer %+v, want its own (term %d)", i, resps[i], term)
		}
		if got := <-seen[i]; got != term {
			t.Errorf("group %d's handler saw term %d, want %d", i, got, term)
		}
	}
	// 51 heartbeats sent at once travel in a round or two (one may have
	// been armed before the others joined), not one frame each.
	if r := a.served.rounds.Load(); r < 1 || r > 3 {
		t.Errorf("%d rounds carried %d heartbeats sent together, want 1-3", r, groups+1)
	}
	if n := b.served.heartbeats.Load(); n != groups+1 {
		t.Errorf("the peer counted %d heartbeats, want %d", n, groups+1)
	}
}

// TestHeartbeatRoundsArePaced: one group's heartbeats, sent back to back,
// go at most one round per HeartbeatInterval.
func TestHeartbeatRoundsArePaced(t *testing.T) {
	const interval = 50 * time.Millisecond
	a, b := pair(t, Options{HeartbeatInterval: interval})
	beatHandler(mustTransport(t, b, "g"), nil)
	ta := mustTransport(t, a, "g")
	var resp raft.AppendEntriesResponse
	if err := ta.AppendEntries("2", b.Addr(), heartbeat(a, 1), &resp); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	const n = 4
	for range n {
		if err := ta.AppendEntries("2", b.Addr(), heartbeat(a, 1), &resp); err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(start); took < n*interval*9/10 {
		t.Fatalf("%d heartbeats after the first took %s, want at least %s: rounds are not paced", n, took, n*interval)
	}
}

// TestHeartbeatReleased: a heartbeat waiting for its round returns
// ErrClosed as soon as its Transport closes or stops its heartbeats (what
// an owner does before raft.Shutdown), and later ones fail at once.
func TestHeartbeatReleased(t *testing.T) {
	for _, how := range []string{"Close", "StopHeartbeats"} {
		t.Run(how, func(t *testing.T) {
			a, b := pair(t, Options{HeartbeatInterval: time.Hour})
			beatHandler(mustTransport(t, b, "g"), nil)
			ta := mustTransport(t, a, "g")
			var resp raft.AppendEntriesResponse
			if err := ta.AppendEntries("2", b.Addr(), heartbeat(a, 1), &resp); err != nil {
				t.Fatal(err) // the first round goes at once
			}
			done := make(chan error, 1)
			go func() { done <- ta.AppendEntries("2", b.Addr(), heartbeat(a, 1), &resp) }()
			waitFor(t, 5*time.Second, "the heartbeat waits for its round", func() bool {
				a.beats.Lock()
				q := a.beats.peers[b.Addr()]
				a.beats.Unlock()
				q.mu.Lock()
				defer q.mu.Unlock()
				return len(q.pending) == 1
			})
			if how == "Close" {
				ta.Close()
			} else {
				ta.StopHeartbeats()
			}
			select {
			case err := <-done:
				if !errors.Is(err, ErrClosed) {
					t.Fatalf("got %v, want ErrClosed", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("a heartbeat waiting for its round was not released by %s", how)
			}
			if err := ta.AppendEntries("2", b.Addr(), heartbeat(a, 1), &resp); !errors.Is(err, ErrClosed) {
				t.Fatalf("a heartbeat after %s: %v, want ErrClosed at once", how, err)
			}
		})
	}
}
