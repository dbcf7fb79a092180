package transport

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// serveRaft answers tr's Consumer with fn until the test ends.
func serveRaft(t *testing.T, tr *Transport, fn func(raft.RPC)) {
	t.Helper()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case rpc := <-tr.Consumer():
				fn(rpc)
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() { close(stop); wg.Wait() })
}

// ackAll answers every RPC with success; AppendEntries echo PrevLogEntry
// as LastLog.
func ackAll(rpc raft.RPC) {
	switch req := rpc.Command.(type) {
	case *raft.AppendEntriesRequest:
		rpc.Respond(&raft.AppendEntriesResponse{Term: req.Term, LastLog: req.PrevLogEntry, Success: true}, nil)
	case *raft.RequestVoteRequest:
		rpc.Respond(&raft.RequestVoteResponse{Term: req.Term, Granted: true}, nil)
	case *raft.InstallSnapshotRequest:
		data, _ := io.ReadAll(rpc.Reader)
		rpc.Respond(&raft.InstallSnapshotResponse{Term: req.Term, Success: string(data) == "snapshot-bytes"}, nil)
	default:
		rpc.Respond(nil, errors.New("unexpected"))
	}
}

func pair(t *testing.T, opts Options) (a, b *Mux) {
	t.Helper()
	ms := newMuxes(t, 2, opts)
	t.Cleanup(func() {
		for _, m := range ms {
			m.Close()
		}
	})
	return ms[0], ms[1]
}

func mustTransport(t *testing.T, m *Mux, group string) *Transport {
	t.Helper()
	tr, err := m.Transport(group)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func entry(prev uint64) *raft.AppendEntriesRequest {
	return &raft.AppendEntriesRequest{Term: 1, Leader: []byte("x"), PrevLogEntry: prev, PrevLogTerm: 1,
		Entries: []*raft.Log{{Index: prev + 1, Term: 1, Data: []byte("d")}}}
}

func TestRegister(t *testing.T) {
	a, _ := pair(t, Options{})
	tr := mustTransport(t, a, "g")
	if _, err := a.Transport("g"); err == nil {
		t.Fatal("registered a group twice")
	}
	tr.Close()
	if _, err := a.Transport("g"); err != nil {
		t.Fatalf("register after close: %v", err)
	}
	if tr.LocalAddr() != a.Addr() || tr.DecodePeer(tr.EncodePeer("1", "h:1")) != "h:1" {
		t.Fatal("addresses")
	}
}

func TestRoundTrip(t *testing.T) {
	a, b := pair(t, Options{})
	ta := mustTransport(t, a, "g")
	serveRaft(t, mustTransport(t, b, "g"), ackAll)

	var vr raft.RequestVoteResponse
	if err := ta.RequestVote("2", b.Addr(), &raft.RequestVoteRequest{Term: 3}, &vr); err != nil || !vr.Granted || vr.Term != 3 {
		t.Fatalf("RequestVote = %+v, %v", vr, err)
	}
	var ar raft.AppendEntriesResponse
	if err := ta.AppendEntries("2", b.Addr(), entry(9), &ar); err != nil || ar.LastLog != 9 {
		t.Fatalf("AppendEntries = %+v, %v", ar, err)
	}
	var sr raft.InstallSnapshotResponse
	data := []byte("snapshot-bytes")
	if err := ta.InstallSnapshot("2", b.Addr(), &raft.InstallSnapshotRequest{Term: 4, Size: int64(len(data))}, &sr, bytes.NewReader(data)); err != nil || !sr.Success {
		t.Fatalf("InstallSnapshot = %+v, %v", sr, err)
	}
	var tr raft.TimeoutNowResponse
	if err := ta.TimeoutNow("2", b.Addr(), &raft.TimeoutNowRequest{}, &tr); err == nil || !strings.Contains(err.Error(), "unexpected") {
		t.Fatalf("remote error not passed on: %v", err)
	}
}

func TestSnapshotTooLarge(t *testing.T) {
	a, b := pair(t, Options{MaxFrameBytes: 1 << 10})
	ta := mustTransport(t, a, "g")
	var sr raft.InstallSnapshotResponse
	err := ta.InstallSnapshot("2", b.Addr(), &raft.InstallSnapshotRequest{Size: 4 << 10}, &sr, bytes.NewReader(make([]byte, 4<<10)))
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("err = %v, want ErrFrameTooLarge", err)
	}
}

func TestUnknownGroup(t *testing.T) {
	a, b := pair(t, Options{})
	ta := mustTransport(t, a, "orders/7")
	var resp raft.RequestVoteResponse
	err := ta.RequestVote("2", b.Addr(), &raft.RequestVoteRequest{Term: 1}, &resp)
	if !errors.Is(err, ErrUnknownGroup) || !strings.Contains(err.Error(), `no raft group "orders/7" on this broker`) {
		t.Fatalf("err = %v, want ErrUnknownGroup naming the group", err)
	}
}

func TestClosed(t *testing.T) {
	a, b := pair(t, Options{})
	ta := mustTransport(t, a, "g")
	ta.Close()
	ta.Close() // idempotent
	var resp raft.AppendEntriesResponse
	if err := ta.AppendEntries("2", b.Addr(), entry(1), &resp); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Transport.Close: %v", err)
	}
	if _, err := ta.AppendEntriesPipeline("2", b.Addr()); !errors.Is(err, ErrClosed) {
		t.Fatalf("pipeline after Transport.Close: %v", err)
	}
	tb := mustTransport(t, b, "g")
	b.Close()
	if err := tb.AppendEntries("1", a.Addr(), entry(1), &resp); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Mux.Close: %v", err)
	}
	if _, err := b.Transport("h"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Transport after Mux.Close: %v", err)
	}
}

// A Transport closed while its calls wait fails them at once, and so does
// the peer's group closing while it holds our request.
func TestCloseFailsPending(t *testing.T) {
	a, b := pair(t, Options{})
	ta := mustTransport(t, a, "g")
	tb := mustTransport(t, b, "g") // nobody consumes

	errc := make(chan error, 2)
	for range 2 {
		go func() {
			var resp raft.AppendEntriesResponse
			errc <- ta.AppendEntries("2", b.Addr(), entry(1), &resp)
		}()
	}
	waitFor(t, 5*time.Second, "both requests reach the peer", func() bool { return b.served.requests.Load() == 2 })
	start := time.Now()
	ta.Close()
	for range 2 {
		if err := <-errc; !errors.Is(err, ErrClosed) {
			t.Fatalf("pending call: %v, want ErrClosed", err)
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("pending calls failed after %s", d)
	}

	tc := mustTransport(t, a, "h")
	th := mustTransport(t, b, "h")
	go func() {
		var resp raft.AppendEntriesResponse
		errc <- tc.AppendEntries("2", b.Addr(), entry(1), &resp)
	}()
	waitFor(t, 5*time.Second, "the request reaches the peer", func() bool { return b.served.requests.Load() == 3 })
	th.Close()
	if err := <-errc; !errors.Is(err, ErrUnknownGroup) {
		t.Fatalf("peer group closed: %v, want ErrUnknownGroup", err)
	}
	_ = tb
}

// A group whose raft takes nothing delays no other group on the same
// connection, and its callers get an error within the timeout.
func TestSlowGroupDoesNotStallOthers(t *testing.T) {
	a, b := pair(t, Options{ConnsPerPeer: 1, RPCTimeout: 700 * time.Millisecond})
	stuckA := mustTransport(t, a, "stuck")
	// Its raft runs (it set its heartbeat handler) but takes nothing.
	mustTransport(t, b, "stuck").SetHeartbeatHandler(func(raft.RPC) {})
	okA := mustTransport(t, a, "ok")
	serveRaft(t, mustTransport(t, b, "ok"), ackAll)

	errc := make(chan error, 5)
	for range 5 {
		go func() {
			var resp raft.AppendEntriesResponse
			errc <- stuckA.AppendEntries("2", b.Addr(), entry(1), &resp)
		}()
	}
	waitFor(t, 5*time.Second, "stuck requests reach the peer", func() bool { return b.served.requests.Load() == 5 })
	for i := range 50 {
		start := time.Now()
		var resp raft.AppendEntriesResponse
		if err := okA.AppendEntries("2", b.Addr(), entry(uint64(i)), &resp); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 300*time.Millisecond {
			t.Fatalf("call %d to a healthy group took %s", i, d)
		}
	}
	for range 5 {
		if err := <-errc; !errors.Is(err, ErrTimeout) && !strings.Contains(err.Error(), "did not take") {
			t.Fatalf("stuck call: %v, want a timeout", err)
		}
	}
}

// Heartbeats reach the handler of their own group only; other RPCs go to
// the Consumer.
func TestHeartbeatRouting(t *testing.T) {
	a, b := pair(t, Options{})
	groups := []string{"g1", "g2"}
	got := map[string]chan *raft.AppendEntriesRequest{}
	for _, g := range groups {
		tb := mustTransport(t, b, g)
		ch := make(chan *raft.AppendEntriesRequest, 10)
		got[g] = ch
		tb.SetHeartbeatHandler(func(rpc raft.RPC) {
			req := rpc.Command.(*raft.AppendEntriesRequest)
			ch <- req
			rpc.Respond(&raft.AppendEntriesResponse{Term: req.Term, Success: true}, nil)
		})
		serveRaft(t, tb, ackAll)
	}
	for i, g := range groups {
		ta := mustTransport(t, a, g)
		hb := &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{Addr: []byte(a.Addr())}, Term: uint64(10 + i)}
		var resp raft.AppendEntriesResponse
		if err := ta.AppendEntries("2", b.Addr(), hb, &resp); err != nil || !resp.Success {
			t.Fatalf("heartbeat: %+v %v", resp, err)
		}
		if err := ta.AppendEntries("2", b.Addr(), entry(5), &resp); err != nil || resp.LastLog != 5 {
			t.Fatalf("append: %+v %v", resp, err)
		}
	}
	for i, g := range groups {
		if n := len(got[g]); n != 1 {
			t.Fatalf("group %s handler saw %d heartbeats, want 1", g, n)
		}
		if req := <-got[g]; req.Term != uint64(10+i) {
			t.Fatalf("group %s handler got the heartbeat of term %d", g, req.Term)
		}
	}
}

func TestBlock(t *testing.T) {
	a, b := pair(t, Options{RPCTimeout: 300 * time.Millisecond}) // calls to an unreachable peer wait this long (resume.go)
	ta := mustTransport(t, a, "g")
	tb := mustTransport(t, b, "g")
	serveRaft(t, ta, ackAll)
	serveRaft(t, tb, ackAll)
	var resp raft.AppendEntriesResponse
	if err := ta.AppendEntries("2", b.Addr(), entry(1), &resp); err != nil {
		t.Fatal(err)
	}
	a.Block(b.Addr())
	if err := ta.AppendEntries("2", b.Addr(), entry(1), &resp); !errors.Is(err, ErrBlocked) {
		t.Fatalf("to a blocked peer: %v", err)
	}
	// From the blocked peer: refused, whether on an old or a new connection.
	for range 3 {
		if err := tb.AppendEntries("1", a.Addr(), entry(1), &resp); err == nil {
			t.Fatal("a blocked peer got through")
		}
	}
	a.Unblock(b.Addr())
	waitFor(t, 5*time.Second, "traffic resumes after Unblock", func() bool {
		return tb.AppendEntries("1", a.Addr(), entry(1), &resp) == nil &&
			ta.AppendEntries("2", b.Addr(), entry(1), &resp) == nil
	})
}

func TestPipelineInOrder(t *testing.T) {
	const n, depth = 500, 4
	a, b := pair(t, Options{PipelineDepth: depth})
	ta := mustTransport(t, a, "g")
	release := make(chan struct{})
	first := true
	serveRaft(t, mustTransport(t, b, "g"), func(rpc raft.RPC) {
		if first { // hold the first answer until depth requests are out
			first = false
			<-release
		}
		ackAll(rpc)
	})
	p, err := ta.AppendEntriesPipeline("2", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	done := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			f := <-p.Consumer()
			if err := f.Error(); err != nil {
				done <- err
				return
			}
			if f.Request().PrevLogEntry != uint64(i) || f.Response().LastLog != uint64(i) {
				done <- errors.New("out of order")
				return
			}
		}
		done <- nil
	}()
	for i := 0; i < n; i++ {
		if _, err := p.AppendEntries(entry(uint64(i)), new(raft.AppendEntriesResponse)); err != nil {
			t.Fatal(err)
		}
		if i == depth-1 {
			close(release) // depth sends returned while the first waited
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Futures that complete out of order still come out of Consumer in send
// order; Close fails the rest and is safe to repeat.
func TestPipelineOutOfOrderAndClose(t *testing.T) {
	a, b := pair(t, Options{PipelineDepth: 8})
	ta := mustTransport(t, a, "g")
	mustTransport(t, b, "g") // holds every request
	rp, err := ta.AppendEntriesPipeline("2", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	p := rp.(*pipeline)
	var fs []raft.AppendFuture
	for i := 0; i < 6; i++ {
		f, err := p.AppendEntries(entry(uint64(i)), new(raft.AppendEntriesResponse))
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f)
	}
	boom := errors.New("boom")
	for i := 3; i >= 0; i-- { // complete 3, 2, 1, 0
		p.c.cancelCall(fs[i].(*appendFuture).call, boom)
	}
	for i := 0; i < 4; i++ {
		f := <-p.Consumer()
		if f != fs[i] || !errors.Is(f.Error(), boom) {
			t.Fatalf("consumer yielded %v (%v), want future %d", f.Request().PrevLogEntry, f.Error(), i)
		}
	}
	p.Close()
	p.Close()
	for _, f := range fs[4:] {
		if err := f.Error(); !errors.Is(err, raft.ErrPipelineShutdown) {
			t.Fatalf("in flight at Close: %v", err)
		}
	}
	if _, err := p.AppendEntries(entry(9), new(raft.AppendEntriesResponse)); !errors.Is(err, raft.ErrPipelineShutdown) {
		t.Fatalf("after Close: %v", err)
	}
}

// Closing the Transport closes its pipelines.
func TestPipelineClosedWithTransport(t *testing.T) {
	a, b := pair(t, Options{})
	ta := mustTransport(t, a, "g")
	mustTransport(t, b, "g")
	p, err := ta.AppendEntriesPipeline("2", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	f, err := p.AppendEntries(entry(1), new(raft.AppendEntriesResponse))
	if err != nil {
		t.Fatal(err)
	}
	ta.Close()
	if err := f.Error(); !errors.Is(err, raft.ErrPipelineShutdown) {
		t.Fatalf("future: %v", err)
	}
}
