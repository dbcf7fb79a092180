package netns

import (
	"context"
	"fmt"
	"strings"
)

// Cut is a network partition in the shape the chaos harness injects:
// Inject applies it, Heal removes every partition. It replaces any
// partition in place, so the harness should not overlap two Cuts on one
// Net.
type Cut struct {
	Net *Net
	// Sides as for Partition. With Via ≥ 0, exactly two sides, joined
	// through host Via (Bridge).
	Sides [][]int
	Via   int
}

// Isolation is the Cut that isolates host i from every other host.
func (nt *Net) Isolation(i int) *Cut {
	var rest []int
	for h := range nt.n {
		if h != i {
			rest = append(rest, h)
		}
	}
	return &Cut{Net: nt, Sides: [][]int{{i}, rest}, Via: -1}
}

// Inject applies the partition.
func (c *Cut) Inject(ctx context.Context) error {
	if c.Via >= 0 {
		if len(c.Sides) != 2 {
			return fmt.Errorf("netns: a bridge joins two sides, not %d", len(c.Sides))
		}
		return c.Net.Bridge(c.Sides[0], c.Sides[1], c.Via)
	}
	return c.Net.Partition(c.Sides...)
}

// Heal removes every partition of the Net.
func (c *Cut) Heal(ctx context.Context) error { return c.Net.Heal() }

// Kind is "isolate" (one host alone against the rest), "bridge" or
// "partition".
func (c *Cut) Kind() string {
	switch {
	case c.Via >= 0:
		return "bridge"
	case len(c.Sides) == 2 && (len(c.Sides[0]) == 1 || len(c.Sides[1]) == 1) && len(c.Sides[0])+len(c.Sides[1]) == c.Net.n:
		return "isolate"
	default:
		return "partition"
	}
}

// Target names the sides by host index, e.g. "{0} | {1,2}", or
// "{0} | {2} via 1" for a bridge. A side holding Client shows "client".
func (c *Cut) Target() string {
	var sides []string
	for _, s := range c.Sides {
		var hs []string
		for _, h := range s {
			if h == Client {
				hs = append(hs, "client")
			} else {
				hs = append(hs, fmt.Sprint(h))
			}
		}
		sides = append(sides, "{"+strings.Join(hs, ",")+"}")
	}
	t := strings.Join(sides, " | ")
	if c.Via >= 0 {
		t += fmt.Sprintf(" via %d", c.Via)
	}
	return t
}
