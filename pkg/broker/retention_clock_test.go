package broker

import (
	"testing"
	"time"
)

// TestRetentionClockHoldsBackJumps: the agreed time jumping 79 minutes
// ahead for a few seconds (a stale sample of a skewed broker and this
// broker's own skew) moves the retention clock only as fast as real time
// (plus the slew); it follows a step back at once, and catches up with a
// lasting forward step at 10% of real time.
func TestRetentionClockHoldsBackJumps(t *testing.T) {
	var c retentionClock
	base := time.UnixMilli(1_800_000_000_000)
	mono := time.Now()
	at := func(s float64) time.Time { return mono.Add(time.Duration(s * float64(time.Second))) }
	sec := func(s float64) time.Time { return base.Add(time.Duration(s * float64(time.Second))) }

	if got := c.next(sec(0), at(0)); !got.Equal(sec(0)) {
		t.Fatalf("first reading %v, want the agreed time", got)
	}
	if got := c.next(sec(1), at(1)); !got.Equal(sec(1)) {
		t.Fatalf("in step: %v, want %v", got, sec(1))
	}
	// 79 minutes ahead, 1 s later: at most 1.1 s further.
	got := c.next(sec(2).Add(79*time.Minute), at(2))
	if got.After(sec(2.1)) {
		t.Fatalf("after a 79-minute jump the clock reads %v past the start, want at most 2.1 s", got.Sub(base))
	}
	// The jump goes away: back in step at once.
	if got := c.next(sec(3), at(3)); !got.Equal(sec(3)) {
		t.Fatalf("after the jump: %v, want %v", got.Sub(base), 3*time.Second)
	}
	// A step back is followed at once.
	if got := c.next(sec(4).Add(-time.Hour), at(4)); !got.Equal(sec(4).Add(-time.Hour)) {
		t.Fatalf("a step back: %v", got.Sub(base))
	}
	// A lasting step forward (the clocks were behind and NTP put them
	// right) is caught up at 10% of real time: 100 s of real time closes
	// 10 s of the gap.
	got = c.next(sec(104), at(104))
	want := sec(4).Add(-time.Hour).Add(110 * time.Second)
	if d := got.Sub(want); d < -time.Millisecond || d > time.Millisecond {
		t.Fatalf("catching up: %v, want %v", got.Sub(base), want.Sub(base))
	}
}
