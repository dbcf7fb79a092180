// Package budget bounds the bytes a broker holds for requests in flight.
//
// A Budget is a pool of bytes. A produce request takes its batches' size
// before it is handed to raft and gives it back once answered; a fetch
// takes up to its response size, less when the pool is low, and gives it
// back once its response is built. When the pool is empty, takers wait (a
// producer is slowed down, as Kafka's queued.max.request.bytes and
// Redpanda's memory backpressure do) instead of the broker's memory
// growing with the number of clients.
//
// Waiters are served in arrival order, so a large request is not starved
// by a stream of small ones. A request larger than the whole pool takes
// the whole pool, once it is free.
package budget

import (
	"context"
	"sync"
)

// Budget is a pool of bytes; the zero value is unusable, use New.
type Budget struct {
	size int64

	mu struct {
		sync.Mutex
		used    int64
		waiters []*waiter // in arrival order
	}
}

type waiter struct {
	least, want int64
	got         int64
	ready       chan struct{} // closed when got is set
}

// New returns a pool of size bytes (at least 1).
func New(size int64) *Budget {
	return &Budget{size: max(size, 1)}
}

// Size is the pool's size in bytes.
func (b *Budget) Size() int64 { return b.size }

// InUse is the bytes taken and not yet released.
func (b *Budget) InUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mu.used
}

// Acquire takes between least and want bytes (both capped at the pool's
// size), as many as are free up to want, waiting until at least least are
// free and no earlier waiter is still waiting, or until ctx ends. It
// returns the bytes taken; Release them.
func (b *Budget) Acquire(ctx context.Context, least, want int64) (int64, error) {
	want = min(max(want, 0), b.size)
	least = min(max(least, 0), want)
	b.mu.Lock()
	if len(b.mu.waiters) == 0 && b.size-b.mu.used >= least {
		got := min(want, b.size-b.mu.used)
		b.mu.used += got
		b.mu.Unlock()
		return got, nil
	}
	w := &waiter{least: least, want: want, ready: make(chan struct{})}
	b.mu.waiters = append(b.mu.waiters, w)
	b.mu.Unlock()

	select {
	case <-w.ready:
		return w.got, nil
	case <-ctx.Done():
		b.mu.Lock()
		select {
		case <-w.ready: // granted meanwhile: give it back
			b.mu.used -= w.got
		default:
			for i, x := range b.mu.waiters {
				if x == w {
					b.mu.waiters = append(b.mu.waiters[:i], b.mu.waiters[i+1:]...)
					break
				}
			}
		}
		b.grantLocked()
		b.mu.Unlock()
		return 0, ctx.Err()
	}
}

// Release gives back n bytes taken by Acquire.
func (b *Budget) Release(n int64) {
	if n <= 0 {
		return
	}
	b.mu.Lock()
	b.mu.used -= n
	if b.mu.used < 0 {
		b.mu.Unlock()
		panic("budget: released more than was acquired")
	}
	b.grantLocked()
	b.mu.Unlock()
}

// grantLocked serves waiters in order while the first one fits.
func (b *Budget) grantLocked() {
	for len(b.mu.waiters) > 0 {
		w := b.mu.waiters[0]
		free := b.size - b.mu.used
		if free < w.least {
			return
		}
		w.got = min(w.want, free)
		b.mu.used += w.got
		b.mu.waiters = b.mu.waiters[1:]
		close(w.ready)
	}
}
