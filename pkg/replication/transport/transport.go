package transport

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Transport is one raft group's raft.Transport over its Mux. It also
// implements raft.WithClose and raft.WithPreVote.
//
// Its state is all a group costs the transport: this struct, an unbuffered
// consumer channel and a closing channel. Goroutines and buffers belong to
// connections and to requests in flight, never to a group at rest.
type Transport struct {
	m        *Mux
	group    string
	consumer chan raft.RPC
	closing  chan struct{}
	hb       atomic.Pointer[func(raft.RPC)]
	catchUp  atomic.Pointer[catchUp] // SetCatchUp (catchup.go)
	// beatsOff is closed by StopHeartbeats (beats.go).
	beatsOff     chan struct{}
	beatsOffOnce sync.Once
	install      installState // snapshot installs that copy a log (install.go)

	mu struct {
		sync.Mutex
		closed     bool
		queue      []*inbound // received, waiting for raft; see deliver
		delivering bool       // a deliver goroutine is running
		pipelines  map[*pipeline]struct{}
	}
}

var (
	_ raft.Transport   = (*Transport)(nil)
	_ raft.WithClose   = (*Transport)(nil)
	_ raft.WithPreVote = (*Transport)(nil)
)

func newTransport(m *Mux, group string) *Transport {
	t := &Transport{
		m:        m,
		group:    group,
		consumer: make(chan raft.RPC),
		closing:  make(chan struct{}),
		beatsOff: make(chan struct{}),
	}
	return t
}

// Group returns the group name the Transport was registered with.
func (t *Transport) Group() string { return t.group }

// Consumer implements raft.Transport.
func (t *Transport) Consumer() <-chan raft.RPC { return t.consumer }

// LocalAddr implements raft.Transport: the Mux's address.
func (t *Transport) LocalAddr() raft.ServerAddress { return t.m.addr }

// SetHeartbeatHandler implements raft.Transport. Heartbeats go to cb,
// concurrently with the Consumer channel; with no handler they go to the
// Consumer like other RPCs.
func (t *Transport) SetHeartbeatHandler(cb func(rpc raft.RPC)) {
	if cb == nil {
		t.hb.Store(nil)
		return
	}
	t.hb.Store(&cb)
}

// EncodePeer implements raft.Transport: the address bytes as they are.
func (t *Transport) EncodePeer(_ raft.ServerID, addr raft.ServerAddress) []byte {
	return []byte(addr)
}

// DecodePeer implements raft.Transport.
func (t *Transport) DecodePeer(b []byte) raft.ServerAddress { return raft.ServerAddress(b) }

// AppendEntries implements raft.Transport. A heartbeat travels in its
// peer's next heartbeat round (beats.go); a request over MaxAppendBytes
// travels in parts (split.go).
func (t *Transport) AppendEntries(_ raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	if isHeartbeat(args) {
		return t.beat(target, args, resp)
	}
	start := time.Now()
	var err error
	if parts := splitAppend(args, t.m.opts.MaxAppendBytes); parts != nil {
		err = t.appendParts(target, args, parts, resp)
	} else {
		err = t.call(target, rpcAppendEntries, args, nil, resp)
	}
	if err != nil {
		t.m.owe(target, t) // resume.go
		if errors.Is(err, ErrUnreachable) {
			// Not past the group's shutdown: raft.Shutdown waits for this
			// call, and StopHeartbeats comes just before it.
			t.m.awaitReachable(target, t.m.opts.RPCTimeout-time.Since(start), t.closing, t.beatsOff)
		}
	}
	return err
}

// RequestVote implements raft.Transport.
//
// A peer that has not opened the group yet (ErrUnknownGroup: a topic just
// created, a broker just restarted) is asked again every voteRetryGap for
// up to voteRetryFor: raft would count the vote as lost and try again only
// after its election timeout, which Strata sets twenty heartbeat timeouts
// long (replication.DefaultRaftConfig).
func (t *Transport) RequestVote(_ raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	deadline := time.Now().Add(voteRetryFor)
	for {
		err := t.call(target, rpcRequestVote, args, nil, resp)
		if !errors.Is(err, ErrUnknownGroup) || time.Now().Add(voteRetryGap).After(deadline) {
			return err
		}
		w := time.NewTimer(voteRetryGap)
		select {
		case <-w.C:
		case <-t.closing:
			w.Stop()
			return err
		}
	}
}

// voteRetryFor and voteRetryGap: how RequestVote waits for a peer to open
// the group.
const (
	voteRetryFor = 8 * time.Second
	voteRetryGap = 50 * time.Millisecond
)

// RequestPreVote implements raft.WithPreVote.
func (t *Transport) RequestPreVote(_ raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	return t.call(target, rpcRequestPreVote, args, nil, resp)
}

// TimeoutNow implements raft.Transport.
func (t *Transport) TimeoutNow(_ raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	return t.call(target, rpcTimeoutNow, args, nil, resp)
}

// InstallSnapshot implements raft.Transport. The snapshot travels inline in
// one frame, so it is read into memory first and must fit MaxFrameBytes:
// Strata's snapshots are offsets and state, not data.
func (t *Transport) InstallSnapshot(_ raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	if args.Size < 0 || args.Size > int64(t.m.opts.MaxFrameBytes) {
		return fmt.Errorf("installSnapshot to %s (group %q): snapshot of %d bytes, limit %d: %w",
			target, t.group, args.Size, t.m.opts.MaxFrameBytes, ErrFrameTooLarge)
	}
	snapshot := make([]byte, args.Size)
	if _, err := io.ReadFull(data, snapshot); err != nil {
		return fmt.Errorf("installSnapshot to %s (group %q): read snapshot: %w", target, t.group, err)
	}
	return t.callInstall(target, args, snapshot, resp)
}

// AppendEntriesPipeline implements raft.Transport; see pipeline.
func (t *Transport) AppendEntriesPipeline(_ raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	if t.isClosed() {
		return nil, ErrClosed
	}
	c, err := t.m.getConn(target)
	if err != nil {
		return nil, err
	}
	p := newPipeline(t, c)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mu.closed {
		return nil, ErrClosed
	}
	if t.mu.pipelines == nil {
		t.mu.pipelines = make(map[*pipeline]struct{})
	}
	t.mu.pipelines[p] = struct{}{}
	return p, nil
}

// Close implements raft.WithClose: it unregisters the group (peers' RPCs
// to it now fail with ErrUnknownGroup), fails its pending calls and
// pipelines with ErrClosed and answers its queued requests. Idempotent;
// raft calls it on Shutdown.
func (t *Transport) Close() error {
	t.m.unregister(t)
	t.mu.Lock()
	if t.mu.closed {
		t.mu.Unlock()
		return nil
	}
	t.mu.closed = true
	pipes := t.mu.pipelines
	t.mu.pipelines = nil
	t.mu.Unlock()
	close(t.closing)
	for p := range pipes {
		p.Close()
	}
	return nil
}

func (t *Transport) isClosed() bool {
	select {
	case <-t.closing:
		return true
	default:
		return false
	}
}

func (t *Transport) forgetPipeline(p *pipeline) {
	t.mu.Lock()
	delete(t.mu.pipelines, p)
	t.mu.Unlock()
}

// encodeRequest encodes a request frame (its id is filled in when sent).
func (t *Transport) encodeRequest(typ rpcType, args any, snapshot []byte) ([]byte, error) {
	// Room for the whole frame up front: an AppendEntries' entries grown
	// into by doubling cost a leader catching a follower up a third of its
	// CPU in copies (pprof, 1 GB behind).
	room := 256 + len(snapshot)
	if ae, ok := args.(*raft.AppendEntriesRequest); ok {
		room += requestBytes(ae)
	}
	b := make([]byte, frameLenSize+headerSize+len(t.group), frameLenSize+headerSize+len(t.group)+room)
	payload, err := encodePayload(b[len(b):], args)
	if err != nil {
		return nil, err
	}
	payload = append(payload, snapshot...)
	f := frame{kind: kindRequest, rpc: typ, group: t.group, payload: payload}
	// appendFrame copies payload over itself here: payload starts where
	// the header ends, so the copy is a no-op move.
	return appendFrame(b[:0], &f, t.m.opts.MaxFrameBytes)
}

// call sends one request and waits for its response, its timeout, or the
// Transport or Mux closing.
func (t *Transport) call(target raft.ServerAddress, typ rpcType, args any, snapshot []byte, resp any) error {
	if t.isClosed() {
		return ErrClosed
	}
	b, err := t.encodeRequest(typ, args, snapshot)
	if err != nil {
		return fmt.Errorf("%s to %s (group %q): %w", typ, target, t.group, err)
	}
	c, err := t.m.getConn(target)
	if err != nil {
		return fmt.Errorf("%s to %s (group %q): %w", typ, target, t.group, err)
	}
	cl := newCall(resp)
	if ae, ok := args.(*raft.AppendEntriesRequest); ok && isLazy(ae) {
		cl.lazy = true
	}
	c.do(cl, b, t.m.opts.timeout(typ), t.closing)
	if cl.err != nil {
		return fmt.Errorf("%s to %s (group %q): %w", typ, target, t.group, cl.err)
	}
	return nil
}
