package transport

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// maxQueuedPerGroup bounds the requests waiting for one group's raft. Raft
// keeps at most a pipeline's depth of AppendEntries plus a vote or two in
// flight per peer, so a full queue means the group is stuck: refuse rather
// than hold more decoded requests in memory.
const maxQueuedPerGroup = 256

// inbound is a received request waiting for its group's raft.
type inbound struct {
	c        *conn
	id       uint64
	rpc      rpcType
	group    string
	req      raft.RPC
	respCh   chan raft.RPCResponse
	deadline time.Time
	lazy     bool // no entries: the answer may wait lazyFlushDelay to share a write (isLazy)
}

// serveRequest routes one request frame; it runs on the connection's
// reader and never blocks on a group. Heartbeats go to the group's
// heartbeat handler on a goroutine of their own (raft's fast path, so disk
// I/O behind an AppendEntries does not delay them); everything else joins
// the group's queue, which a delivery goroutine feeds to raft in arrival
// order. A group that is slow or stuck therefore delays only itself.
func (m *Mux) serveRequest(c *conn, f *frame) {
	m.served.requests.Add(1)
	if f.rpc == rpcHeartbeats {
		beats, err := decodeBeats(f.payload, m.opts.MaxFrameBytes)
		if err != nil {
			m.reply(c, f.id, f.rpc, f.group, raft.RPCResponse{Error: err})
			return
		}
		m.spawn(func() { m.serveRound(c, f.id, beats) })
		return
	}
	t := m.lookup(f.group)
	if t == nil {
		m.replyNoGroup(c, f.id, f.rpc, f.group)
		return
	}
	cmd, snapshot, err := decodeRequest(f.rpc, f.payload, m.opts.MaxFrameBytes)
	if err != nil {
		// Frame boundaries are intact: answer and keep the connection.
		m.reply(c, f.id, f.rpc, f.group, raft.RPCResponse{Error: err})
		return
	}
	respCh := make(chan raft.RPCResponse, 1)
	in := &inbound{
		c:        c,
		id:       f.id,
		rpc:      f.rpc,
		group:    f.group,
		req:      raft.RPC{Command: cmd, RespChan: respCh},
		respCh:   respCh,
		deadline: time.Now().Add(m.opts.timeout(f.rpc)),
	}
	if snapshot != nil {
		in.req.Reader = bytes.NewReader(snapshot)
	}
	if f.rpc == rpcAppendEntries && isLazy(cmd.(*raft.AppendEntriesRequest)) {
		in.lazy = true
	}
	if f.rpc == rpcAppendEntries && isHeartbeat(cmd.(*raft.AppendEntriesRequest)) {
		m.served.heartbeats.Add(1)
		if fn := t.hb.Load(); fn != nil {
			m.spawn(func() { t.heartbeat(*fn, in) })
			return
		}
	}
	if f.rpc == rpcInstallSnapshot && t.gateInstall(in) {
		return
	}
	t.enqueue(in)
}

// isHeartbeat is NetworkTransport's test for raft's heartbeat, which is the
// only AppendEntries raft sends with these fields zero.
func isHeartbeat(req *raft.AppendEntriesRequest) bool {
	leader := req.RPCHeader.Addr
	if len(leader) == 0 {
		leader = req.Leader
	}
	return req.Term != 0 && leader != nil &&
		req.PrevLogEntry == 0 && req.PrevLogTerm == 0 &&
		len(req.Entries) == 0 && req.LeaderCommitIndex == 0
}

// isLazy reports whether an AppendEntries, and its answer, may wait
// lazyFlushDelay in the write buffer: one without entries. That is a
// heartbeat, or the leader's idle AppendEntries every CommitTimeout that
// tells a follower the commit index, or a probe for a follower's log;
// none is waited for by a client, and an entry written after it flushes
// it anyway. AppendEntries carrying entries are flushed at once.
func isLazy(req *raft.AppendEntriesRequest) bool {
	return len(req.Entries) == 0
}

// heartbeat runs raft's heartbeat handler and answers, lazily (see
// lazyFlushDelay).
func (t *Transport) heartbeat(fn func(raft.RPC), in *inbound) {
	in.lazy = true
	fn(in.req)
	t.await(in)
}

// enqueue queues in for the group's raft and starts the delivery goroutine
// if none is running.
func (t *Transport) enqueue(in *inbound) {
	t.mu.Lock()
	if t.mu.closed {
		t.mu.Unlock()
		t.m.replyNoGroup(in.c, in.id, in.rpc, in.group)
		return
	}
	if len(t.mu.queue) >= maxQueuedPerGroup {
		t.mu.Unlock()
		t.m.reply(in.c, in.id, in.rpc, in.group, raft.RPCResponse{
			Error: fmt.Errorf("transport: raft group %q has %d requests queued", in.group, maxQueuedPerGroup),
		})
		return
	}
	t.mu.queue = append(t.mu.queue, in)
	start := !t.mu.delivering
	t.mu.delivering = true
	t.mu.Unlock()
	if start && !t.m.spawn(t.deliver) {
		t.mu.Lock()
		t.mu.delivering = false
		t.mu.Unlock()
	}
}

// deliver hands queued requests to raft one at a time, in arrival order,
// and answers each; it exits when the queue is empty. Waiting for each
// answer before handing over the next costs nothing: raft's main loop
// answers an RPC before it takes the next one. Keeping the order matters:
// pipelined AppendEntries arriving out of order would be refused.
func (t *Transport) deliver() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		t.mu.Lock()
		if len(t.mu.queue) == 0 {
			t.mu.delivering = false
			t.mu.queue = nil // let a burst's backing array go
			t.mu.Unlock()
			return
		}
		in := t.mu.queue[0]
		t.mu.queue[0] = nil
		t.mu.queue = t.mu.queue[1:]
		t.mu.Unlock()

		if !t.hand(in, timer) {
			return
		}
	}
}

// hand gives in to the group's raft and answers it, or answers why it could
// not; false when the Mux is closing.
//
// A group is registered before its raft starts: opening it (recovering the
// log, restoring a snapshot, raft's scan of the log) takes a while, and a
// restarted broker's peers send to it as soon as it answers. A request for
// a group whose raft does not run yet waits for it only half the request's
// timeout (openHold): if raft has not started then, the request is refused
// as for a group not opened (ErrUnknownGroup, which the sender's raft
// retries quietly), while the sender still waits for the answer; held to
// the end, it would time out on both sides and the sender's raft would log
// an error. Refusing at once was the alternative: it costs the sender's
// raft a backoff that grows with every refusal, when the group is usually
// running a fraction of a second later and can answer the request held.
func (t *Transport) hand(in *inbound, timer *time.Timer) bool {
	for {
		opening := !t.running()
		hold := t.m.opts.timeout(in.rpc) / openHold // since arrival, while opening
		until := in.deadline
		if opening {
			until = in.deadline.Add(hold - t.m.opts.timeout(in.rpc))
		}
		timer.Reset(time.Until(until))
		select {
		case t.consumer <- in.req:
			timer.Stop()
			t.await(in)
			return true
		case <-timer.C:
			if opening && t.running() {
				continue // started meanwhile: the rest of the timeout is raft's
			}
			if opening {
				t.m.replyNoGroupMsg(in.c, in.id, in.rpc, in.group, fmt.Sprintf("transport: raft group %q is opening: its raft did not start within %s", in.group, hold))
				return true
			}
			t.m.reply(in.c, in.id, in.rpc, in.group, raft.RPCResponse{
				Error: fmt.Errorf("%w: raft group %q did not take the %s within %s", ErrTimeout, in.group, in.rpc, t.m.opts.timeout(in.rpc)),
			})
			return true
		case <-t.closing:
			timer.Stop()
			t.m.replyNoGroup(in.c, in.id, in.rpc, in.group)
			return true
		case <-t.m.closing:
			timer.Stop()
			return false
		}
	}
}

// openHold: a request for a group whose raft does not run yet waits at most
// its timeout divided by this (see hand).
const openHold = 2

// running reports whether the group's raft runs: raft sets its heartbeat
// handler (raft.NewRaft, once it has restored its state and scanned its
// log) just before it starts taking requests.
func (t *Transport) running() bool { return t.hb.Load() != nil }

// await waits for raft's answer to in and sends it.
func (t *Transport) await(in *inbound) {
	timer := time.NewTimer(time.Until(in.deadline))
	defer timer.Stop()
	select {
	case resp := <-in.respCh:
		t.m.replyFrame(in.c, in.id, in.rpc, in.group, resp, in.lazy)
	case <-timer.C:
		t.m.reply(in.c, in.id, in.rpc, in.group, raft.RPCResponse{
			Error: fmt.Errorf("%w: raft group %q did not answer the %s within %s", ErrTimeout, in.group, in.rpc, t.m.opts.timeout(in.rpc)),
		})
	case <-t.closing:
		t.m.replyNoGroup(in.c, in.id, in.rpc, in.group)
	case <-t.m.closing:
	}
}

// reply sends a response frame. A connection that fails is closed by
// write; there is no one else to tell.
func (m *Mux) reply(c *conn, id uint64, typ rpcType, group string, resp raft.RPCResponse) {
	m.replyFrame(c, id, typ, group, resp, false)
}

// replyFrame is reply, lazily flushed for heartbeat answers.
func (m *Mux) replyFrame(c *conn, id uint64, typ rpcType, group string, resp raft.RPCResponse, lazy bool) {
	f := frame{kind: kindResponse, id: id, rpc: typ, group: group}
	if resp.Error != nil {
		f.err = resp.Error.Error()
	} else if resp.Response != nil {
		payload, err := encodePayload(nil, resp.Response)
		if err != nil {
			f.err = err.Error()
		} else {
			f.payload = payload
		}
	}
	b, err := appendFrame(nil, &f, m.opts.MaxFrameBytes)
	if err != nil {
		f.err, f.payload = err.Error(), nil
		b, _ = appendFrame(nil, &f, m.opts.MaxFrameBytes)
	}
	if err := c.writeFrame(b, m.opts.RPCTimeout, lazy); err != nil {
		m.log.Debug("raft transport: response not sent", zap.String("peer", string(c.peer)), zap.Error(err))
	}
}

func (m *Mux) replyNoGroup(c *conn, id uint64, typ rpcType, group string) {
	m.replyNoGroupMsg(c, id, typ, group, fmt.Sprintf("transport: no raft group %q on this broker", group))
}

// replyNoGroupMsg is replyNoGroup saying msg.
func (m *Mux) replyNoGroupMsg(c *conn, id uint64, typ rpcType, group, msg string) {
	f := frame{kind: kindNoGroup, id: id, rpc: typ, group: group, err: msg}
	b, err := appendFrame(nil, &f, m.opts.MaxFrameBytes)
	if err != nil {
		return // a group name too long to echo was never registered; drop
	}
	if err := c.write(b, m.opts.RPCTimeout); err != nil {
		m.log.Debug("raft transport: response not sent", zap.String("peer", string(c.peer)), zap.Error(err))
	}
}

// putID fills in the request id of an encoded frame, and seals it again.
func putID(b []byte, id uint64) {
	binary.BigEndian.PutUint64(b[idOffset:], id)
	sealFrame(b)
}
