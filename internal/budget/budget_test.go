package budget

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestAcquireAndRelease(t *testing.T) {
	b := New(100)
	ctx := context.Background()
	if got, err := b.Acquire(ctx, 60, 60); got != 60 || err != nil {
		t.Fatalf("Acquire(60) = %d, %v", got, err)
	}
	// A fetch takes what is left, down to its least.
	if got, err := b.Acquire(ctx, 10, 80); got != 40 || err != nil {
		t.Fatalf("Acquire(10..80) with 40 free = %d, %v", got, err)
	}
	if b.InUse() != 100 {
		t.Fatalf("in use %d", b.InUse())
	}
	// Nothing free: a waiter waits until its least is free.
	done := make(chan int64)
	go func() {
		got, _ := b.Acquire(ctx, 30, 30)
		done <- got
	}()
	waitWaiters(t, b, 1)
	b.Release(20)
	select {
	case got := <-done:
		t.Fatalf("granted %d with only 20 free", got)
	default:
	}
	b.Release(20)
	if got := <-done; got != 30 {
		t.Fatalf("granted %d, want 30", got)
	}
	// More than the pool: capped at the pool.
	b.Release(90)
	if got, _ := b.Acquire(ctx, 500, 500); got != 100 {
		t.Fatalf("Acquire(500) of a 100-byte pool = %d, want 100", got)
	}
}

// Waiters are served in arrival order: a small request does not pass a
// large one that waits.
func TestFirstComeFirstServed(t *testing.T) {
	b := New(100)
	ctx := context.Background()
	b.Acquire(ctx, 100, 100)
	var wg sync.WaitGroup
	wg.Go(func() { b.Acquire(ctx, 80, 80) })
	waitWaiters(t, b, 1)
	wg.Go(func() { b.Acquire(ctx, 10, 10) })
	waitWaiters(t, b, 2)
	b.Release(50) // 50 free: the small one would fit, but the large one is first
	if n := b.InUse(); n != 50 {
		t.Fatalf("in use %d after releasing 50: the 10-byte request passed the earlier 80-byte one", n)
	}
	b.Release(50)
	wg.Wait()
	if n := b.InUse(); n != 90 {
		t.Fatalf("in use %d, want both waiters served (90)", n)
	}
}

// A waiter whose context ends takes nothing and lets the next one in.
func TestCancelledWaiter(t *testing.T) {
	b := New(100)
	b.Acquire(context.Background(), 90, 90)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := b.Acquire(ctx, 50, 50); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if b.InUse() != 90 {
		t.Fatalf("a cancelled waiter kept bytes: in use %d", b.InUse())
	}
	if got, err := b.Acquire(context.Background(), 10, 10); got != 10 || err != nil {
		t.Fatalf("after a cancelled waiter: %d, %v", got, err)
	}
}

// Many takers never hold more than the pool between them.
func TestNeverOverPool(t *testing.T) {
	const size = 1000
	b := New(size)
	var wg sync.WaitGroup
	var mu sync.Mutex
	held, peak := int64(0), int64(0)
	for i := range 50 {
		wg.Go(func() {
			for range 200 {
				n, err := b.Acquire(context.Background(), int64(1+i%7)*10, int64(1+i%13)*40)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				held += n
				peak = max(peak, held)
				mu.Unlock()
				mu.Lock()
				held -= n
				mu.Unlock()
				b.Release(n)
			}
		})
	}
	wg.Wait()
	if peak > size || b.InUse() != 0 {
		t.Fatalf("peak %d of a %d-byte pool, %d left in use", peak, size, b.InUse())
	}
}

func waitWaiters(t *testing.T, b *Budget, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b.mu.Lock()
		got := len(b.mu.waiters)
		b.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d waiters, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}
