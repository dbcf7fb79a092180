package transport

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestPeerUnreachableOnce: a peer that stops is reported in one line
// however many calls to it fail, each failure wraps ErrUnreachable (so
// raft's logger can keep it quiet), and one line says when it is back.
func TestPeerUnreachableOnce(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	// A short RPCTimeout: an AppendEntries to an unreachable peer waits
	// that long for it to answer again (resume.go).
	a, b := pair(t, Options{Logger: zap.New(core), RPCTimeout: 100 * time.Millisecond})
	serveRaft(t, mustTransport(t, b, "g"), ackAll)
	ta := mustTransport(t, a, "g")
	var resp raft.AppendEntriesResponse
	if err := ta.AppendEntries("x", b.Addr(), entry(1), &resp); err != nil {
		t.Fatal(err)
	}

	addr := b.Addr()
	b.Close()
	const calls = 20
	for i := range calls {
		err := ta.AppendEntries("x", addr, entry(1), &resp)
		if !errors.Is(err, ErrUnreachable) {
			t.Fatalf("call %d to a stopped peer: %v, want ErrUnreachable", i, err)
		}
		err = ta.AppendEntries("x", addr, &raft.AppendEntriesRequest{Term: 1}, &resp) // a heartbeat
		if !errors.Is(err, ErrUnreachable) {
			t.Fatalf("heartbeat %d to a stopped peer: %v, want ErrUnreachable", i, err)
		}
	}
	if n := logs.FilterMessageSnippet("peer unreachable").Len(); n != 1 {
		t.Fatalf("%d calls to a stopped peer logged %d \"peer unreachable\" lines, want 1: %v", 2*calls, n, logs.All())
	}
	if n := logs.FilterLevelExact(zapcore.ErrorLevel).Len(); n != 0 {
		t.Fatalf("errors logged: %v", logs.FilterLevelExact(zapcore.ErrorLevel).All())
	}

	// The peer restarts on the same address.
	b2, err := Listen(string(addr), Options{})
	if err != nil {
		t.Fatalf("restart the peer on %s: %v", addr, err)
	}
	t.Cleanup(func() { b2.Close() })
	serveRaft(t, mustTransport(t, b2, "g"), ackAll)
	waitFor(t, 10*time.Second, "a call to the restarted peer", func() bool {
		return ta.AppendEntries("x", addr, entry(1), &resp) == nil
	})
	for range calls {
		if err := ta.AppendEntries("x", addr, entry(1), &resp); err != nil {
			t.Fatal(err)
		}
	}
	if n := logs.FilterMessageSnippet("reachable again").Len(); n != 1 {
		t.Fatalf("a peer back logged %d \"reachable again\" lines, want 1: %v", n, logs.All())
	}
	if n := logs.FilterMessageSnippet("peer unreachable").Len(); n != 1 {
		t.Fatalf("\"peer unreachable\" logged %d times in all, want 1: %v", n, logs.All())
	}
}

// TestSilentPeerUnreachable: a watched peer whose connections stay up but
// which answers nothing (paused, say) is reported once after
// silentIntervals heartbeat intervals; calls that then time out to it wrap
// ErrUnreachable.
func TestSilentPeerUnreachable(t *testing.T) {
	// The peer: accepts connections and reads them, and never writes.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ln.Close()
	var mu sync.Mutex
	var accepted []net.Conn
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range accepted {
			c.Close()
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepted = append(accepted, c)
			mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); io.Copy(io.Discard, c) }()
		}
	}()
	peer := raft.ServerAddress(ln.Addr().String())

	core, logs := observer.New(zapcore.InfoLevel)
	const interval = 20 * time.Millisecond
	ms := newMuxes(t, 1, Options{Logger: zap.New(core), HeartbeatInterval: interval, RPCTimeout: 300 * time.Millisecond})
	a := ms[0]
	defer a.Close()
	a.Watch(peer)
	waitFor(t, 10*time.Second, "a silent peer reported", func() bool {
		return logs.FilterMessageSnippet("peer unreachable").Len() > 0
	})
	ta := mustTransport(t, a, "g")
	var resp raft.AppendEntriesResponse
	if err := ta.AppendEntries("x", peer, entry(1), &resp); !errors.Is(err, ErrTimeout) || !errors.Is(err, ErrUnreachable) {
		t.Fatalf("call to a silent peer: %v, want ErrTimeout and ErrUnreachable", err)
	}
	if n := logs.FilterMessageSnippet("peer unreachable").Len(); n != 1 {
		t.Fatalf("\"peer unreachable\" logged %d times, want 1: %v", n, logs.All())
	}
}
