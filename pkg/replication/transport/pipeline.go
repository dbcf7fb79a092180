package transport

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"golang.org/x/sync/semaphore"
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
	t      *Transport
	c      *conn
	sem    chan struct{} // a slot per request in flight or not yet consumed
	window *semaphore.Weighted
	// created and lastDelivery (since created, by the monotonic clock):
	// acquire waits while futures are being delivered.
	created      time.Time
	lastDelivery atomic.Int64
	ctx          context.Context // cancelled by Close
	cancel       context.CancelFunc
	doneCh       chan raft.AppendFuture
	closing      chan struct{}
	once         sync.Once

	mu struct {
		sync.Mutex
		closed     bool
		queue      []*appendFuture // in send order
		delivering bool
	}
}

func newPipeline(t *Transport, c *conn) *pipeline {
	p := &pipeline{
		t:       t,
		c:       c,
		sem:     make(chan struct{}, t.m.opts.PipelineDepth),
		window:  semaphore.NewWeighted(int64(t.m.opts.PipelineBytes)),
		created: time.Now(),
		doneCh:  make(chan raft.AppendFuture),
		closing: make(chan struct{}),
	}
	p.ctx, p.cancel = context.WithCancel(t.m.ctx)
	return p
}

// AppendEntries sends args without waiting for the response. It blocks
// while PipelineDepth requests or PipelineBytes of entries are in flight,
// at most RPCTimeout. A request over MaxAppendBytes is sent as consecutive
// parts (split.go), all written before AppendEntries returns, so the
// requests after it follow its last part on the connection.
func (p *pipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	weight := int64(min(requestBytes(args), p.t.m.opts.PipelineBytes))
	if err := p.acquire(weight); err != nil {
		return nil, err
	}
	f := &appendFuture{start: time.Now(), args: args, resp: resp, weight: weight}
	f.call = newCall(resp)
	f.call.onDone = p.advance
	f.call.lazy = isLazy(args)

	parts := splitAppend(args, p.t.m.opts.MaxAppendBytes)
	if parts == nil {
		b, err := p.t.encodeRequest(rpcAppendEntries, args, nil)
		if err != nil {
			p.release(weight)
			return nil, fmt.Errorf("appendEntries pipeline to %s (group %q): %w", p.c.peer, p.t.group, err)
		}
		if !p.enqueue(f) {
			return nil, raft.ErrPipelineShutdown
		}
		// A send that fails completes the future with the error; it
		// reaches Consumer like any other, in order, and raft stops the
		// pipeline.
		p.c.start(f.call, b, p.t.m.opts.RPCTimeout)
		return f, nil
	}

	f.parts = make([]*call, len(parts))
	answers := make([]*raft.AppendEntriesResponse, len(parts))
	var left atomic.Int32
	left.Store(int32(len(parts)))
	for i := range parts {
		answers[i] = new(raft.AppendEntriesResponse)
		f.parts[i] = newCall(answers[i])
		f.parts[i].onDone = func() {
			if left.Add(-1) == 0 {
				f.call.complete(f.partsDone(answers))
			}
		}
	}
	if !p.enqueue(f) {
		return nil, raft.ErrPipelineShutdown
	}
	for i, part := range parts {
		b, err := p.t.encodeRequest(rpcAppendEntries, part, nil)
		if err != nil {
			// This part and the ones after it are not sent: fail them
			// here (Close cannot have completed a call never started).
			err = fmt.Errorf("appendEntries pipeline to %s (group %q): %w", p.c.peer, p.t.group, err)
			for _, cl := range f.parts[i:] {
				cl.complete(err)
			}
			break
		}
		p.c.start(f.parts[i], b, p.t.m.opts.RPCTimeout)
	}
	return f, nil
}

// enqueue adds f to the futures awaiting delivery, unless the pipeline is
// closed: then it gives f's slot back and reports false.
func (p *pipeline) enqueue(f *appendFuture) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.closed {
		p.release(f.weight)
		return false
	}
	p.mu.queue = append(p.mu.queue, f)
	return true
}

// acquire takes a slot and weight bytes of the window. It waits as long
// as raft keeps taking answered futures: a follower catching up is slow,
// not gone, and it is answering. It gives up once RPCTimeout has passed
// with no future delivered (the follower stopped answering, whose calls
// time out, or raft stopped reading them).
func (p *pipeline) acquire(weight int64) error {
	timeout := p.t.m.opts.RPCTimeout
	select {
	case p.sem <- struct{}{}:
	case <-p.closing:
		return raft.ErrPipelineShutdown
	default:
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		for waiting := true; waiting; {
			select {
			case p.sem <- struct{}{}:
				waiting = false
			case <-p.closing:
				return raft.ErrPipelineShutdown
			case <-timer.C:
				if !p.progressing(timeout) {
					return p.stalled("no slot free")
				}
				timer.Reset(timeout)
			}
		}
	}
	if p.window.TryAcquire(weight) {
		return nil
	}
	for {
		ctx, cancel := context.WithTimeout(p.ctx, timeout)
		err := p.window.Acquire(ctx, weight)
		cancel()
		switch {
		case err == nil:
			return nil
		case p.ctx.Err() != nil:
			<-p.sem
			return raft.ErrPipelineShutdown
		case !p.progressing(timeout):
			<-p.sem
			return p.stalled(fmt.Sprintf("%d bytes in flight", p.t.m.opts.PipelineBytes))
		}
	}
}

// progressing reports whether a future was delivered within d.
func (p *pipeline) progressing(d time.Duration) bool {
	return time.Since(p.created) < time.Duration(p.lastDelivery.Load())+d
}

// stalled is acquire's error when no future was delivered for RPCTimeout.
// If the oldest request has no answer, the follower stopped answering:
// that is news of the peer (reach.go: one line, and raft logs the error
// quietly). If it has one, raft stopped reading this pipeline (it does
// after a refusal, and is about to close it): the pipeline is as good as
// closed.
func (p *pipeline) stalled(what string) error {
	err := fmt.Errorf("appendEntries pipeline to %s (group %q): %w: %s", p.c.peer, p.t.group, ErrTimeout, what)
	p.mu.Lock()
	answered := len(p.mu.queue) > 0 && p.mu.queue[0].call.isDone()
	p.mu.Unlock()
	if answered {
		return fmt.Errorf("%w: raft stopped reading the pipeline: %w", ErrClosed, err)
	}
	return p.t.m.unreachable(p.c.peer, fmt.Errorf("no answer for %s: %w", p.t.m.opts.RPCTimeout, err))
}

// release gives back a slot and weight bytes of the window.
func (p *pipeline) release(weight int64) {
	p.window.Release(weight)
	<-p.sem
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
		p.cancel()
		for _, f := range queue {
			if f.parts == nil {
				p.c.cancelCall(f.call, raft.ErrPipelineShutdown)
				continue
			}
			for _, cl := range f.parts {
				p.c.cancelCall(cl, raft.ErrPipelineShutdown)
			}
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
			p.lastDelivery.Store(int64(time.Since(p.created)))
			p.release(f.weight)
			p.t.delivered(p.c.peer, f.args, f.resp, f.call.err)
		case <-p.closing:
			return
		case <-p.t.m.closing:
			return
		}
	}
}

// appendFuture implements raft.AppendFuture.
type appendFuture struct {
	call   *call // a request sent as parts: completed when every part is
	start  time.Time
	args   *raft.AppendEntriesRequest
	resp   *raft.AppendEntriesResponse
	weight int64   // its share of the pipeline's window
	parts  []*call // a request sent as parts (split.go): one call each
}

// partsDone sets f's response from its parts' answers once all of them
// completed, and returns the error of the first part that failed.
func (f *appendFuture) partsDone(answers []*raft.AppendEntriesResponse) error {
	for _, cl := range f.parts {
		if cl.err != nil {
			return cl.err
		}
	}
	*f.resp = *answerOf(f.args, answers)
	return nil
}

func (f *appendFuture) Error() error {
	<-f.call.done
	return f.call.err
}

func (f *appendFuture) Start() time.Time                      { return f.start }
func (f *appendFuture) Request() *raft.AppendEntriesRequest   { return f.args }
func (f *appendFuture) Response() *raft.AppendEntriesResponse { return f.resp }
