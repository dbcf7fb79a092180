package chaos

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Step is one entry of the nemesis schedule. The schedule is a pure
// function of the seed and the scenario: the same seed gives the same
// kinds, targets, hold times and gaps. What a target resolves to ("the
// leader of partition 3") depends on the cluster at that moment.
type Step struct {
	Kind string
	// Leader: the target is the leader of partition Partition of the
	// main topic (half of the steps); otherwise member Pick modulo the
	// running members, in id order.
	Leader    bool
	Partition int
	Pick      int
	Hold      time.Duration // fault in place this long before healing
	Gap       time.Duration // healthy time after the checks, before the next step
}

func (s Step) String() string {
	target := fmt.Sprintf("member #%d", s.Pick)
	if s.Leader {
		target = fmt.Sprintf("leader of partition %d", s.Partition)
	}
	return fmt.Sprintf("%s of %s for %s", s.Kind, target, s.Hold.Round(time.Millisecond))
}

// planner draws the schedule's steps in order.
type planner struct {
	rng        *rand.Rand
	weights    []weighted
	total      int
	long       bool // long runs: outages past every timeout (30 s kills, 25 s pauses)
	membership bool
}

type weighted struct {
	kind   string
	weight int
}

func newPlanner(seed uint64, scenario string, kinds []weighted, long, membership bool) *planner {
	h := uint64(14695981039346656037)
	for _, c := range []byte(scenario) {
		h = (h ^ uint64(c)) * 1099511628211
	}
	p := &planner{rng: rand.New(rand.NewPCG(seed, h)), weights: kinds, long: long, membership: membership}
	for _, k := range kinds {
		p.total += k.weight
	}
	return p
}

// between is a duration uniform in [lo, hi).
func (p *planner) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(p.rng.Int64N(int64(hi-lo)))
}

// next is step i. Membership scenarios add a broker at step 3 of every
// 20 and decommission it at step 13.
func (p *planner) next(i int) Step {
	s := Step{Leader: p.rng.IntN(2) == 0, Partition: p.rng.IntN(1 << 16), Pick: p.rng.IntN(1 << 16)}
	r := p.rng.Float64()
	s.Gap = p.between(300*time.Millisecond, 1500*time.Millisecond)
	if p.membership && i%20 == 3 {
		s.Kind = "add-broker"
		return s
	}
	if p.membership && i%20 == 13 {
		s.Kind = "decommission"
		return s
	}
	n := p.rng.IntN(p.total)
	for _, k := range p.weights {
		if n < k.weight {
			s.Kind = k.kind
			break
		}
		n -= k.weight
	}
	switch s.Kind {
	case "kill":
		switch {
		case r < 0.05 || (p.long && r < 0.15):
			s.Hold = p.between(30*time.Second, 35*time.Second) // past every timeout
		case r < 0.3:
			s.Hold = p.between(4*time.Second, 10*time.Second)
		default:
			s.Hold = p.between(300*time.Millisecond, 3*time.Second)
		}
	case "pause":
		switch {
		case r < 0.5:
			s.Hold = p.between(200*time.Millisecond, 800*time.Millisecond) // under the 1 s heartbeat timeout
		case p.long && r > 0.9:
			s.Hold = p.between(22*time.Second, 26*time.Second) // past the partitions' own Raft timers (20 s)
		default:
			s.Hold = p.between(1500*time.Millisecond, 6*time.Second)
		}
	case "isolate", "partition", "bridge":
		switch {
		case r < 0.3:
			s.Hold = p.between(500*time.Millisecond, 2*time.Second) // about the heartbeat timeout
		case p.long && r > 0.85:
			s.Hold = p.between(25*time.Second, 35*time.Second) // past every timeout
		default:
			s.Hold = p.between(3*time.Second, 10*time.Second)
		}
	case "disk-full":
		s.Hold = p.between(2*time.Second, 10*time.Second)
	case "clock-skew":
		s.Hold = p.between(3*time.Second, 8*time.Second) // retention is checked every second
	default:
		s.Hold = p.between(200*time.Millisecond, 2*time.Second)
	}
	return s
}
