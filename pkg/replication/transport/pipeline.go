package transport

import (
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// pipeline is raft's AppendPipeline to one follower of one group.
//
// It pins one connection, so its requests reach the follower in send order
// (the follower's Mux hands a group's requests to raft in arrival order),
// and keeps up to Options.PipelineDepth of them in flight. Responses are
// matched by the connection's reader; futures reach Consumer in send order
// whatever order they complete in, through a goroutine that runs only while
// there is a completed future at the head of the queue to hand over.
//
// Rejected alternative: a decode goroutine per pipeline, as raft's
// netPipeline has. Raft keeps a pipeline open per follower for as long as
// it leads, so that is two goroutines per led group at rest.
type pipeline struct {
	t       *Transport
	c       *conn
	sem     chan struct{} // a slot per request in flight or not yet consumed
	doneCh  chan raft.AppendFuture
	closing chan struct{}
	once    sync.Once

	mu struct {
		sync.Mutex
		closed     bool
		queue      []*appendFuture // in send order
		delivering bool
	}
}

func newPipeline(t *Transport, c *conn) *pipeline {
	return &pipeline{
		t:       t,
		c:       c,
		sem:     make(chan struct{}, t.m.opts.PipelineDepth),
		doneCh:  make(chan raft.AppendFuture),
		closing: make(chan struct{}),
	}
}

// AppendEntries sends args without waiting for the response. It blocks
// while PipelineDepth requests are in flight, at most RPCTimeout.
func (p *pipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	select {
	case p.sem <- struct{}{}:
	case <-p.closing:
		return nil, raft.ErrPipelineShutdown
	default:
		timer := time.NewTimer(p.t.m.opts.RPCTimeout)
		select {
		case p.sem <- struct{}{}:
			timer.Stop()
		case <-p.closing:
			timer.Stop()
			return nil, raft.ErrPipelineShutdown
		case <-timer.C:
			return nil, fmt.Errorf("appendEntries pipeline to %s (group %q): %w: no slot free", p.c.peer, p.t.group, ErrTimeout)
		}
	}
	b, err := p.t.encodeRequest(rpcAppendEntries, args, nil)
	if err != nil {
		<-p.sem
		return nil, fmt.Errorf("appendEntries pipeline to %s (group %q): %w", p.c.peer, p.t.group, err)
	}
	f := &appendFuture{start: time.Now(), args: args, resp: resp}
	f.call = newCall(resp)
	f.call.onDone = p.advance
	f.call.lazy = isLazy(args)

	p.mu.Lock()
	if p.mu.closed {
		p.mu.Unlock()
		<-p.sem
		return nil, raft.ErrPipelineShutdown
	}
	p.mu.queue = append(p.mu.queue, f)
	p.mu.Unlock()

	// A send that fails completes the future with the error; it reaches
	// Consumer like any other, in order, and raft stops the pipeline.
	p.c.start(f.call, b, p.t.m.opts.RPCTimeout)
	return f, nil
}

// Consumer returns the channel of completed futures, in send order.
func (p *pipeline) Consumer() <-chan raft.AppendFuture { return p.doneCh }

// Close fails the requests in flight with raft.ErrPipelineShutdown and
// stops delivering futures. Safe to call more than once and concurrently
// with AppendEntries.
func (p *pipeline) Close() error {
	p.once.Do(func() {
		p.mu.Lock()
		p.mu.closed = true
		queue := p.mu.queue
		p.mu.queue = nil
		p.mu.Unlock()
		close(p.closing)
		for _, f := range queue {
			p.c.cancelCall(f.call, raft.ErrPipelineShutdown)
		}
		p.t.forgetPipeline(p)
	})
	return nil
}

// advance starts the delivery goroutine if the head future is complete and
// none is running. It runs when a future completes.
func (p *pipeline) advance() {
	p.mu.Lock()
	if p.mu.closed || p.mu.delivering || len(p.mu.queue) == 0 || !p.mu.queue[0].call.isDone() {
		p.mu.Unlock()
		return
	}
	p.mu.delivering = true
	p.mu.Unlock()
	if !p.t.m.spawn(p.deliver) {
		p.mu.Lock()
		p.mu.delivering = false
		p.mu.Unlock()
	}
}

// deliver hands completed futures at the head of the queue to Consumer,
// and releases their slots as raft takes them.
func (p *pipeline) deliver() {
	for {
		p.mu.Lock()
		if p.mu.closed || len(p.mu.queue) == 0 || !p.mu.queue[0].call.isDone() {
			p.mu.delivering = false
			p.mu.Unlock()
			return
		}
		f := p.mu.queue[0]
		p.mu.queue[0] = nil
		p.mu.queue = p.mu.queue[1:]
		p.mu.Unlock()
		select {
		case p.doneCh <- f:
			<-p.sem
		case <-p.closing:
			return
		case <-p.t.m.closing:
			return
		}
	}
}

// appendFuture implements raft.AppendFuture.
type appendFuture struct {
	call  *call
	start time.Time
	args  *raft.AppendEntriesRequest
	resp  *raft.AppendEntriesResponse
}

func (f *appendFuture) Error() error {
	<-f.call.done
	return f.call.err
}

func (f *appendFuture) Start() time.Time                      { return f.start }
func (f *appendFuture) Request() *raft.AppendEntriesRequest   { return f.args }
func (f *appendFuture) Response() *raft.AppendEntriesResponse { return f.resp }
