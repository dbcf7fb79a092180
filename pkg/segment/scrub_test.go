package segment

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
)

// TestScrub: Scrub reads every closed segment (not the active one),
// passes every byte it reads to Throttle, finds a flipped byte in a closed
// segment with its position, and stops when its context ends.
func TestScrub(t *testing.T) {
	dir, _, _ := crashLog(t)
	l := mustOpen(t, dir, testOptions())
	defer l.Close()
	segs := l.Segments()
	var closed int
	var closedBytes int64
	for _, s := range segs {
		if !s.Active {
			closed++
			closedBytes += s.Size
		}
	}
	var throttled int64
	opts := ScrubOptions{Throttle: func(_ context.Context, n int) error { throttled += int64(n); return nil }}
	res, err := l.Scrub(context.Background(), opts)
	if err != nil || res.Segments != closed || res.Bytes != closedBytes || len(res.Damage) != 0 || throttled != closedBytes {
		t.Fatalf("sound log: %+v, %v; throttled %d; want %d segments, %d bytes", res, err, throttled, closed, closedBytes)
	}

	first := segmentPath(dir, 0) + logSuffix
	ends := frameEnds(t, first)
	flip(t, first, ends[1]+frameHeaderSize+3)
	res, err = l.Scrub(context.Background(), ScrubOptions{})
	if err != nil || len(res.Damage) != 1 {
		t.Fatalf("after a flip: %+v, %v", res, err)
	}
	if d := res.Damage[0]; d.Segment != filepath.Base(first) || d.Offset != ends[1] || !isCorruption(d) {
		t.Fatalf("damage %+v, want %s at %d", d, filepath.Base(first), ends[1])
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Scrub(ctx, ScrubOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled scrub: %v", err)
	}
}

// TestScrubWhileWriting: a scrub runs while the writer appends, rolls and
// truncates the prefix (segments deleted under it): no error, no false
// damage. Run with -race.
func TestScrubWhileWriting(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, testOptions())
	defer l.Close()
	a := &appender{t: t, l: l}
	for i := 0; i < 40; i++ {
		a.add("bb", 2, int64(i))
	}
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 20; i++ {
			res, err := l.Scrub(context.Background(), ScrubOptions{})
			if err == nil && len(res.Damage) > 0 {
				err = res.Damage[0]
			}
			if err != nil {
				errc <- err
				return
			}
		}
	}()
	for i := 0; i < 60; i++ {
		a.add("brb", 2, int64(100+i))
		if i%20 == 19 {
			segs := l.Segments()
			if err := l.TruncatePrefix(segs[1].BaseOffset); err != nil {
				t.Fatal(err)
			}
		}
	}
	wg.Wait()
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
}
