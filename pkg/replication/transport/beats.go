package transport

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// Heartbeat rounds: every heartbeat is real, and they travel together.
//
// Raft (v1.7.3, replication.go heartbeat) gives every follower of every
// group it leads a goroutine that sends a heartbeat, an AppendEntries with
// no entries, randomTimeout(HeartbeatTimeout/10) after the previous one
// returned: a fixed ratio raft does not let us configure. With a thousand
// groups that is thousands of RPCs per second per broker, each a frame,
// a msgpack encode and decode, goroutine hand-offs and a share of a
// syscall on both sides: most of an idle broker's CPU.
//
// So a group's Transport does not send a heartbeat on its own. It adds it
// to its peer's next round and waits for that round's answer:
//
//	group A ─┐                       peer broker
//	group B ─┼─► round to peer ──────► each group's heartbeat handler,
//	group C ─┘   (one frame)           called in turn on one goroutine
//	          ◄── one frame of answers ◄┘
//
// A round goes to a peer at most once per Options.HeartbeatInterval (the
// broker uses a third of its --raft-heartbeat-timeout) and otherwise as
// soon as lazyFlushDelay has let other groups join. While a heartbeat waits, raft's
// heartbeat goroutine for that follower is parked in the call; when it
// returns, raft waits HeartbeatTimeout/10 to /5 and calls again, into the
// next round. So each follower of each group gets exactly one heartbeat
// per interval (or per raft's own wait, if longer), and raft's goroutine
// wakes as often.
//
// What raft sees, and why its timing still holds:
//
//  1. Every answer is the follower's own: raft's heartbeat handler on the
//     peer ran appendEntries and answered. Nothing is faked, so raft's
//     lease (checkLeaderLease) and VerifyLeader mean what they say.
//  2. The follower hears from its leader every raft heartbeat period
//     (HeartbeatTimeout/10 to /5) plus up to one interval. The broker sets
//     raft's HeartbeatTimeout to twenty of its own heartbeat timeouts and
//     the lease to ten, and decides elections itself from per-peer liveness
//     (liveness.go, broker/failover.go), so a follower hears its leader a
//     few times per lease and per election timeout, as raft needs.
//  3. A heartbeat waits up to one interval before it is sent. Raft's
//     heartbeat goroutine does not watch its stop channel meanwhile, so a
//     leader that steps down has it back within an interval (and its
//     queued heartbeat, of the old term, may still reach followers; they
//     answer it as raft does any late heartbeat). Raft's Shutdown waits
//     for that goroutine before it closes the Transport, so owners call
//     StopHeartbeats first, which releases it at once with ErrClosed, as
//     Close of the Mux does.
//  4. A round that fails (no connection, timeout, the peer closing) fails
//     each of its heartbeats with that error and raft backs off as before;
//     a group the peer does not have fails alone, with ErrUnknownGroup.
//
// Rejected: answering some heartbeats locally with the last real answer
// (Strata did this before: it cut the number of heartbeats sent by about
// 2 in 5, weakened VerifyLeader, and left raft's goroutines waking every
// 100-200ms); a goroutine per peer ticking rounds (rounds are armed by
// the first heartbeat waiting, so a broker with nothing to lead ticks
// nothing).

// beat is one heartbeat waiting for its round. The round goroutine fills
// in ans or err and closes done; the caller copies ans into raft's
// response, so an abandoned beat never writes into memory raft reuses.
type beat struct {
	beatReq
	done chan struct{}
	ans  raft.AppendEntriesResponse
	err  error
}

// beatQueue is one peer's next round.
type beatQueue struct {
	m        *Mux
	mu       sync.Mutex
	pending  []*beat
	armed    *time.Timer // the round is scheduled
	last     time.Time   // when the previous round was sent
	inflight int         // rounds sent and not yet answered or failed
	closed   bool
}

// beat sends heartbeat args to target in target's next round and waits
// for its answer.
func (t *Transport) beat(target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	select {
	case <-t.beatsOff:
		return ErrClosed
	case <-t.closing:
		return ErrClosed
	default:
	}
	b := &beat{beatReq: beatReq{group: t.group, req: *args}, done: make(chan struct{})}
	if err := t.m.joinRound(target, b); err != nil {
		return fmt.Errorf("heartbeat to %s (group %q): %w", target, t.group, err)
	}
	select {
	case <-b.done:
	case <-t.beatsOff:
		return ErrClosed
	case <-t.closing:
		return ErrClosed
	case <-t.m.closing:
		return ErrClosed
	}
	if b.err != nil {
		return fmt.Errorf("heartbeat to %s (group %q): %w", target, t.group, b.err)
	}
	*resp = b.ans
	return nil
}

// joinRound adds b to peer's next round, scheduling the round if b is the
// first to wait for it.
func (m *Mux) joinRound(peer raft.ServerAddress, b *beat) error {
	q := m.queue(peer)
	if q == nil {
		return ErrClosed
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	if q.armed == nil {
		if !q.arm(peer, max(lazyFlushDelay, time.Until(q.last.Add(m.opts.HeartbeatInterval)))) {
			return ErrClosed
		}
	}
	q.pending = append(q.pending, b)
	return nil
}

// queue returns peer's round queue, creating it; nil once the Mux closed.
func (m *Mux) queue(peer raft.ServerAddress) *beatQueue {
	m.beats.Lock()
	defer m.beats.Unlock()
	if m.beats.closed {
		return nil
	}
	q := m.beats.peers[peer]
	if q == nil {
		q = &beatQueue{m: m}
		if m.beats.peers == nil {
			m.beats.peers = make(map[raft.ServerAddress]*beatQueue)
		}
		m.beats.peers[peer] = q
	}
	return q
}

// arm schedules q's next round to peer after delay; q.mu is held. The
// timer's callback is owned like a goroutine of the Mux: counted from here
// until it ran, or until close stopped it.
func (q *beatQueue) arm(peer raft.ServerAddress, delay time.Duration) bool {
	m := q.m
	if !m.addWorker() {
		return false
	}
	q.armed = time.AfterFunc(delay, func() {
		defer m.wg.Done()
		m.sendRound(peer, q)
	})
	return true
}

// take removes and returns the waiting beats, marking a round sent now.
func (q *beatQueue) take() []*beat {
	q.mu.Lock()
	defer q.mu.Unlock()
	beats := q.pending
	q.pending, q.armed, q.last = nil, nil, time.Now()
	q.inflight++
	return beats
}

// close fails every waiting beat with ErrClosed and refuses later ones.
func (q *beatQueue) close() {
	q.mu.Lock()
	beats := q.pending
	q.pending = nil
	if q.armed != nil && q.armed.Stop() {
		q.m.wg.Done() // the callback will not run
	}
	q.armed = nil
	q.closed = true
	q.mu.Unlock()
	for _, b := range beats {
		b.err = ErrClosed
		close(b.done)
	}
}

// StopHeartbeats releases this group's heartbeats waiting for a round, and
// fails later ones, with ErrClosed. Call it just before raft.Shutdown:
// raft waits for its heartbeat goroutines before it closes the Transport,
// and one waiting for a round to a peer that does not answer would hold
// the shutdown for up to DialTimeout+RPCTimeout. Idempotent.
func (t *Transport) StopHeartbeats() {
	t.beatsOffOnce.Do(func() { close(t.beatsOff) })
}

// roundAnswers is a round's call response: its answers, decoded by the
// connection's reader (see conn.respond).
type roundAnswers struct {
	want    int
	answers []beatAnswer
}

func (r *roundAnswers) decode(payload []byte) (err error) {
	r.answers, err = decodeBeatAnswers(payload, r.want)
	return err
}

// sendRound sends peer's waiting heartbeats as one round and hands each
// its answer. A round with no heartbeats is a pulse (liveness.go): its
// answer only tells that the peer is there.
func (m *Mux) sendRound(peer raft.ServerAddress, q *beatQueue) {
	beats := q.take()
	err := m.round(peer, beats)
	q.mu.Lock()
	q.inflight--
	q.mu.Unlock()
	for _, b := range beats {
		if b.err == nil {
			b.err = err
		}
		close(b.done)
	}
}

// round sends beats to peer and waits for the answers; it sets each beat's
// answer or error, and returns an error that applies to all of them.
func (m *Mux) round(peer raft.ServerAddress, beats []*beat) error {
	f := frame{kind: kindRequest, rpc: rpcHeartbeats, payload: appendBeats(nil, beats)}
	b, err := appendFrame(nil, &f, m.opts.MaxFrameBytes)
	if err != nil {
		return err
	}
	c, err := m.getConn(peer)
	if err != nil {
		return err
	}
	ra := &roundAnswers{want: len(beats)}
	cl := newCall(ra)
	c.do(cl, b, m.opts.RPCTimeout, m.closing)
	if cl.err != nil {
		return cl.err
	}
	for i, a := range ra.answers {
		switch {
		case a.noGroup:
			beats[i].err = &remoteError{sentinel: ErrUnknownGroup, msg: a.err}
		case a.err != "":
			beats[i].err = &remoteError{msg: a.err}
		default:
			beats[i].ans = a.resp
		}
	}
	m.served.rounds.Add(1)
	return nil
}

// closeRounds fails every waiting heartbeat with ErrClosed (Mux.Close).
func (m *Mux) closeRounds() {
	m.beats.Lock()
	m.beats.closed = true
	peers := m.beats.peers
	m.beats.Unlock()
	for _, q := range peers {
		q.close()
	}
}

// roundWorkers bounds the goroutines answering one round. A heartbeat of a
// new term makes raft write the term to its stable store before it
// answers; with several at once those writes share an fsync
// (replication.StableStores), one after another they would not.
const roundWorkers = 16

// serveRound answers a round received from c: each heartbeat goes to its
// group's heartbeat handler (raft's processHeartbeat, which answers before
// it returns), on up to roundWorkers goroutines that this call waits for.
func (m *Mux) serveRound(c *conn, id uint64, beats []beatReq) {
	m.served.heartbeats.Add(uint64(len(beats)))
	answers := make([]beatAnswer, len(beats))
	var next atomic.Int64
	work := func() {
		for i := int(next.Add(1) - 1); i < len(beats); i = int(next.Add(1) - 1) {
			answers[i] = m.answerBeat(&beats[i])
		}
	}
	var wg sync.WaitGroup
	for range min(roundWorkers, len(beats)) - 1 {
		wg.Add(1)
		go func() { defer wg.Done(); work() }()
	}
	work()
	wg.Wait()
	f := frame{kind: kindResponse, id: id, rpc: rpcHeartbeats, payload: appendBeatAnswers(nil, answers)}
	b, err := appendFrame(nil, &f, m.opts.MaxFrameBytes)
	if err != nil {
		m.reply(c, id, rpcHeartbeats, "", raft.RPCResponse{Error: err})
		return
	}
	if err := c.write(b, m.opts.RPCTimeout); err != nil {
		m.log.Debug("raft transport: heartbeat answers not sent", zap.String("peer", string(c.peer)), zap.Error(err))
	}
}

// answerBeat runs one heartbeat through its group's raft.
func (m *Mux) answerBeat(b *beatReq) beatAnswer {
	t := m.lookup(b.group)
	if t == nil {
		return beatAnswer{noGroup: true, err: fmt.Sprintf("transport: no raft group %q on this broker", b.group)}
	}
	fn := t.hb.Load()
	if fn == nil {
		// Registered, its raft not started yet: to the sender, as good
		// as not opened (ErrUnknownGroup), and as routine.
		return beatAnswer{noGroup: true, err: fmt.Sprintf("transport: raft group %q takes no heartbeats yet", b.group)}
	}
	// A channel per heartbeat: a late answer can never pass for another
	// group's.
	respCh := make(chan raft.RPCResponse, 1)
	(*fn)(raft.RPC{Command: &b.req, RespChan: respCh})
	select {
	case r := <-respCh:
		if r.Error != nil {
			return beatAnswer{err: r.Error.Error()}
		}
		resp, ok := r.Response.(*raft.AppendEntriesResponse)
		if !ok {
			return beatAnswer{err: fmt.Sprintf("transport: raft group %q answered a heartbeat with %T", b.group, r.Response)}
		}
		return beatAnswer{resp: *resp}
	default:
		// processHeartbeat drops heartbeats while raft shuts down: the
		// group is closing, as good as gone (ErrUnknownGroup).
		return beatAnswer{noGroup: true, err: fmt.Sprintf("transport: raft group %q did not answer a heartbeat (shutting down)", b.group)}
	}
}
