package cluster

import (
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

func TestAgreedIsTheMedianClock(t *testing.T) {
	own := time.Unix(1_000_000, 0)
	for _, tc := range []struct {
		name    string
		offsets []time.Duration
		want    time.Duration
	}{
		{"alone", nil, 0},
		{"this broker 48h ahead of two", []time.Duration{-48 * time.Hour, -48*time.Hour + time.Second}, -48*time.Hour + time.Second},
		{"one other ahead", []time.Duration{48 * time.Hour, 10 * time.Millisecond}, 10 * time.Millisecond},
		{"one other behind", []time.Duration{-time.Hour, 5 * time.Millisecond}, 0},
		{"two: the earlier", []time.Duration{time.Hour}, 0},
		{"two: the earlier, other behind", []time.Duration{-time.Hour}, -time.Hour},
		{"five, two skewed ahead", []time.Duration{time.Hour, 2 * time.Hour, time.Millisecond, -time.Millisecond}, time.Millisecond},
	} {
		var others []time.Time
		for _, o := range tc.offsets {
			others = append(others, own.Add(o))
		}
		if got := agreed(own, others).Sub(own); got != tc.want {
			t.Errorf("%s: agreed is own%+v, want own%+v", tc.name, got, tc.want)
		}
	}
}

// TestSamplesSurviveAJumpOfOwnClock: what a broker believes of the others'
// clocks is kept against its monotonic clock, so when its own wall clock
// jumps 48 h ahead the agreed time stays the others'.
func TestSamplesSurviveAJumpOfOwnClock(t *testing.T) {
	var skew time.Duration
	c := &clocks{now: func() time.Time { return time.Now().Add(skew) }, by: map[string]clockSample{}}
	m := &Membership{clocks: c}
	for _, name := range []string{"2", "3"} {
		c.NotifyPingComplete(&memberlist.Node{Name: name}, time.Millisecond, (&clocks{now: time.Now}).AckPayload())
	}
	skew = 48 * time.Hour
	if d := m.AgreedNow().Sub(time.Now()); d < -time.Second || d > time.Second {
		t.Fatalf("own clock 48h ahead: agreed time is %s from the others'", d)
	}
	if off := m.ClockOffsets()["2"]; off > -47*time.Hour {
		t.Fatalf("node 2's offset %s, want about -48h", off)
	}
}

// TestAgreedNowWaitsForAMajority: a broker that has sampled no other clock
// yet (just started) may not decide by time in a cluster of three; one
// sample makes a majority of three, two of five.
func TestAgreedNowWaitsForAMajority(t *testing.T) {
	c := &clocks{now: time.Now, by: map[string]clockSample{}}
	m := &Membership{clocks: c}
	if _, ok := m.AgreedNowOf(1); !ok {
		t.Fatal("a cluster of one broker: not agreed")
	}
	if _, ok := m.AgreedNowOf(3); ok {
		t.Fatal("no samples in a cluster of three: agreed")
	}
	c.NotifyPingComplete(&memberlist.Node{Name: "2"}, time.Millisecond, (&clocks{now: time.Now}).AckPayload())
	if _, ok := m.AgreedNowOf(3); !ok {
		t.Fatal("one sample in a cluster of three: not agreed")
	}
	if _, ok := m.AgreedNowOf(5); ok {
		t.Fatal("one sample in a cluster of five: agreed")
	}
}
