package transport

import (
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func heartbeatReq(term uint64, leader string) *raft.AppendEntriesRequest {
	return &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{Addr: []byte(leader)}, Term: term, Leader: []byte(leader)}
}

// hbStep is one heartbeat raft sends at ms: the thinner answers it (want
// true) or lets it through, and then the real call returns rtt later with
// the given answer.
type hbStep struct {
	ms      int
	term    uint64
	leader  string
	want    bool // answered locally
	rtt     int
	fail    bool   // the real call fails
	refuse  bool   // the real answer is Success false
	resTerm uint64 // the real answer's term (0: the request's)
}

// warmUp feeds a thinner 2*thinBlock real heartbeats, each returning at
// once, raft waiting wait ms between them; it returns when the last one
// returned.
func warmUp(t *testing.T, th *thinner, addr raft.ServerAddress, base time.Time, wait int) int {
	t.Helper()
	ms := 0
	for i := 0; i < 2*thinBlock; i++ {
		now := base.Add(time.Duration(ms) * time.Millisecond)
		var resp raft.AppendEntriesResponse
		req := heartbeatReq(1, "L")
		if th.answer(addr, req, now, &resp) {
			// Answered from an earlier one: fine, it is the shape of
			// the estimate we test below, not this.
			ms += wait
			continue
		}
		th.sent(addr, req, now, &raft.AppendEntriesResponse{Term: 1, Success: true}, nil)
		ms += wait
	}
	return ms - wait
}

// TestThinnerRules drives the deterministic core with a script of
// heartbeats. Raft waits 100ms between heartbeats here (HeartbeatTimeout
// 1s), so the learnt window is 166ms.
func TestThinnerRules(t *testing.T) {
	base := time.Unix(1000, 0)
	cases := []struct {
		name  string
		steps []hbStep
	}{
		{"second within the window is answered, third is not", []hbStep{
			{ms: 100, term: 1, leader: "L"},
			{ms: 200, term: 1, leader: "L", want: true},
			{ms: 300, term: 1, leader: "L"},
			{ms: 400, term: 1, leader: "L", want: true},
		}},
		{"the window counts from the real one's return", []hbStep{
			{ms: 100, term: 1, leader: "L", rtt: 50},
			{ms: 300, term: 1, leader: "L", want: true}, // 150ms after it returned
			{ms: 320, term: 1, leader: "L"},             // 170ms after
		}},
		{"a failed call is not reused", []hbStep{
			{ms: 100, term: 1, leader: "L", fail: true},
			{ms: 200, term: 1, leader: "L"},
			{ms: 300, term: 1, leader: "L", want: true},
		}},
		{"a refusal is not reused", []hbStep{
			{ms: 100, term: 1, leader: "L", refuse: true},
			{ms: 200, term: 1, leader: "L"},
		}},
		{"a higher term in the answer is not reused", []hbStep{
			{ms: 100, term: 1, leader: "L", resTerm: 2},
			{ms: 200, term: 1, leader: "L"},
		}},
		{"a new term or leader is sent", []hbStep{
			{ms: 100, term: 1, leader: "L"},
			{ms: 150, term: 2, leader: "L"},
			{ms: 200, term: 2, leader: "M"},
			{ms: 250, term: 2, leader: "M", want: true},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			th := newThinner(time.Second)
			const peer = "p:1"
			warm := warmUp(t, th, peer, base, 100)
			// Start the script after a real heartbeat 200ms back, so
			// the first step is outside any window.
			at := base.Add(time.Duration(warm+100) * time.Millisecond)
			for i, s := range tc.steps {
				now := at.Add(time.Duration(s.ms) * time.Millisecond)
				req := heartbeatReq(s.term, s.leader)
				resp := raft.AppendEntriesResponse{}
				got := th.answer(peer, req, now, &resp)
				if got != s.want {
					t.Fatalf("step %d (%+v): answered locally = %v, want %v", i, s, got, s.want)
				}
				if got {
					if !resp.Success || resp.Term != s.term {
						t.Fatalf("step %d: local answer %+v", i, resp)
					}
					continue
				}
				var err error
				real := &raft.AppendEntriesResponse{Term: s.term, Success: !s.refuse}
				if s.resTerm != 0 {
					real.Term = s.resTerm
				}
				if s.fail {
					err = errors.New("boom")
				}
				th.sent(peer, req, now.Add(time.Duration(s.rtt)*time.Millisecond), real, err)
			}
		})
	}
}

// TestThinnerWindowLearnt: the window follows raft's heartbeat period, so
// a short HeartbeatTimeout (the broker's flag goes down to 100ms) gets a
// short window, and nothing is answered locally before the period is
// known.
func TestThinnerWindowLearnt(t *testing.T) {
	base := time.Unix(1000, 0)
	for _, tc := range []struct {
		wait   time.Duration // raft's wait: HeartbeatTimeout/10
		max    time.Duration
		window time.Duration
	}{
		{100 * time.Millisecond, time.Second, 166 * time.Millisecond},
		{10 * time.Millisecond, time.Second, 16 * time.Millisecond},
		{500 * time.Millisecond, time.Second, 833 * time.Millisecond},
		{100 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond},
	} {
		t.Run(fmt.Sprint(tc.wait, tc.max), func(t *testing.T) {
			th := newThinner(tc.max)
			now := base
			req := heartbeatReq(1, "L")
			ok := &raft.AppendEntriesResponse{Term: 1, Success: true}
			for i := 0; i < thinBlock; i++ {
				var resp raft.AppendEntriesResponse
				if th.answer("p", req, now, &resp) {
					t.Fatalf("heartbeat %d answered locally before the period is known", i)
				}
				th.sent("p", req, now, ok, nil)
				now = now.Add(tc.wait)
			}
			var resp raft.AppendEntriesResponse
			th.answer("p", req, now, &resp) // the thinBlock-th wait
			th.mu.Lock()
			w := th.window(th.mu.peers["p"])
			th.mu.Unlock()
			if w < tc.window-time.Millisecond || w > tc.window+time.Millisecond {
				t.Fatalf("window %s, want %s", w, tc.window)
			}
		})
	}

	// Raft's timeout shrinks (ReloadConfig): the first shorter wait
	// shrinks the window.
	th := newThinner(time.Second)
	now := base
	req := heartbeatReq(1, "L")
	ok := &raft.AppendEntriesResponse{Term: 1, Success: true}
	step := func(wait time.Duration) {
		var resp raft.AppendEntriesResponse
		now = now.Add(wait)
		if !th.answer("p", req, now, &resp) {
			th.sent("p", req, now, ok, nil)
		}
	}
	for i := 0; i < 3*thinBlock; i++ {
		step(100 * time.Millisecond)
	}
	step(10 * time.Millisecond)
	th.mu.Lock()
	w := th.window(th.mu.peers["p"])
	th.mu.Unlock()
	if w > 17*time.Millisecond {
		t.Fatalf("window %s after raft's period fell to 10ms", w)
	}
}

// TestThinnerBoundsContact is the safety property, over random heartbeat
// schedules like raft's: a locally answered heartbeat never comes more
// than W (HeartbeatTimeout/6, plus the estimate's bias: 20% allowed here)
// after the last real success, so raft's last contact is never more than
// that later than the truth; and the follower never goes longer than W +
// HeartbeatTimeout/5 (+ a round trip) between real heartbeats while they
// succeed.
func TestThinnerBoundsContact(t *testing.T) {
	const hbTimeout = time.Second
	for seed := int64(1); seed <= 20; seed++ {
		rnd := rand.New(rand.NewSource(seed))
		th := newThinner(DefaultHeartbeatThinning)
		now := time.Unix(1000, 0)
		req := heartbeatReq(1, "L")
		var lastReal time.Time
		real, local := 0, 0
		for i := 0; i < 2000; i++ {
			now = now.Add(hbTimeout/10 + time.Duration(rnd.Int63n(int64(hbTimeout/10))))
			var resp raft.AppendEntriesResponse
			if th.answer("p", req, now, &resp) {
				local++
				if d := now.Sub(lastReal); d > hbTimeout/5 {
					t.Fatalf("seed %d: answered locally %s after the last real success", seed, d)
				}
				continue
			}
			if !lastReal.IsZero() {
				if d := now.Sub(lastReal); d > hbTimeout/5+hbTimeout/5+20*time.Millisecond {
					t.Fatalf("seed %d: %s between real heartbeats", seed, d)
				}
			}
			real++
			rtt := time.Duration(rnd.Int63n(int64(20 * time.Millisecond)))
			now = now.Add(rtt)
			lastReal = now
			th.sent("p", req, now, &raft.AppendEntriesResponse{Term: 1, Success: true}, nil)
		}
		if local < 2000/4 {
			t.Fatalf("seed %d: only %d of 2000 heartbeats answered locally", seed, local)
		}
		t.Logf("seed %d: %d real, %d answered locally", seed, real, local)
	}
}

// TestTransportThinsHeartbeats: through a Transport, with the clock
// injected, heartbeats inside the window do not reach the peer, and
// entries, votes and snapshots always do.
func TestTransportThinsHeartbeats(t *testing.T) {
	var clock struct {
		sync.Mutex
		now time.Time
	}
	clock.now = time.Unix(1000, 0)
	now := func() time.Time { clock.Lock(); defer clock.Unlock(); return clock.now }
	advance := func(d time.Duration) { clock.Lock(); clock.now = clock.now.Add(d); clock.Unlock() }

	a, b := pair(t, Options{now: now})
	ta := mustTransport(t, a, "g")
	serveRaft(t, mustTransport(t, b, "g"), ackAll)
	req := heartbeatReq(1, string(a.Addr()))

	beat := func() {
		t.Helper()
		var resp raft.AppendEntriesResponse
		if err := ta.AppendEntries("2", b.Addr(), req, &resp); err != nil || !resp.Success {
			t.Fatalf("heartbeat = %+v, %v", resp, err)
		}
	}
	for i := 0; i < thinBlock; i++ { // learn the period: 100ms
		beat()
		advance(100 * time.Millisecond)
	}
	sent := b.served.heartbeats.Load()
	if sent != thinBlock {
		t.Fatalf("%d heartbeats reached the peer while learning, want %d", sent, thinBlock)
	}
	// Real at 0, local at 100, real at 200, ...
	for i := 0; i < 10; i++ {
		beat()
		advance(100 * time.Millisecond)
	}
	if got := b.served.heartbeats.Load() - sent; got != 5 {
		t.Fatalf("%d of 10 heartbeats reached the peer, want 5", got)
	}
	if got := a.thinned.Load(); got != 5 {
		t.Fatalf("thinned = %d, want 5", got)
	}

	// Everything else goes on the wire, however often.
	reqs := b.served.requests.Load()
	for i := 0; i < 3; i++ {
		var ar raft.AppendEntriesResponse
		if err := ta.AppendEntries("2", b.Addr(), entry(uint64(i)), &ar); err != nil {
			t.Fatal(err)
		}
		var vr raft.RequestVoteResponse
		if err := ta.RequestVote("2", b.Addr(), &raft.RequestVoteRequest{Term: 1}, &vr); err != nil {
			t.Fatal(err)
		}
		commit := &raft.AppendEntriesRequest{Term: 1, Leader: []byte("x"), LeaderCommitIndex: 5}
		if err := ta.AppendEntries("2", b.Addr(), commit, &ar); err != nil {
			t.Fatal(err)
		}
	}
	if got := b.served.requests.Load() - reqs; got != 9 {
		t.Fatalf("%d of 9 non-heartbeat requests reached the peer", got)
	}

	// Thinning off: every heartbeat is sent.
	c, d := pair(t, Options{HeartbeatThinning: -1, now: now})
	tc := mustTransport(t, c, "g")
	serveRaft(t, mustTransport(t, d, "g"), ackAll)
	for i := 0; i < 3*thinBlock; i++ {
		var resp raft.AppendEntriesResponse
		if err := tc.AppendEntries("2", d.Addr(), req, &resp); err != nil {
			t.Fatal(err)
		}
		advance(100 * time.Millisecond)
	}
	if got := d.served.heartbeats.Load(); got != 3*thinBlock {
		t.Fatalf("thinning off: %d of %d heartbeats sent", got, 3*thinBlock)
	}
}

// TestTransportThinningBlockedPeer: a peer cut off is noticed: the first
// heartbeat outside the window fails, and none is answered locally after.
func TestTransportThinningBlockedPeer(t *testing.T) {
	var clock struct {
		sync.Mutex
		now time.Time
	}
	clock.now = time.Unix(1000, 0)
	now := func() time.Time { clock.Lock(); defer clock.Unlock(); return clock.now }
	advance := func(d time.Duration) { clock.Lock(); clock.now = clock.now.Add(d); clock.Unlock() }

	a, b := pair(t, Options{now: now})
	ta := mustTransport(t, a, "g")
	serveRaft(t, mustTransport(t, b, "g"), ackAll)
	req := heartbeatReq(1, string(a.Addr()))
	for i := 0; i < 2*thinBlock; i++ {
		var resp raft.AppendEntriesResponse
		if err := ta.AppendEntries("2", b.Addr(), req, &resp); err != nil {
			t.Fatal(err)
		}
		advance(100 * time.Millisecond)
	}
	a.Block(b.Addr())
	fails := 0
	for i := 0; i < 10; i++ {
		var resp raft.AppendEntriesResponse
		if err := ta.AppendEntries("2", b.Addr(), req, &resp); err != nil {
			fails++
		} else if i > 1 {
			t.Fatalf("heartbeat %d after Block succeeded", i)
		}
		advance(100 * time.Millisecond)
	}
	if fails < 9 {
		t.Fatalf("%d of 10 heartbeats to a blocked peer failed, want >= 9", fails)
	}
}
