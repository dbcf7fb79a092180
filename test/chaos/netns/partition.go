package netns

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
)

// Partition splits the hosts into sides: hosts in different sides cannot
// exchange packets, in either direction, over any protocol. A host named
// in no side talks to everyone, and the test (Client) reaches every host
// unless Client is put in a side. It replaces any earlier partition.
func (nt *Net) Partition(sides ...[]int) error {
	side := map[int]int{}
	for s, hosts := range sides {
		for _, h := range hosts {
			if h != Client {
				nt.check(h)
			}
			if _, dup := side[h]; dup {
				return fmt.Errorf("netns: host %d is in two sides", h)
			}
			side[h] = s
		}
	}
	blocked := make([][]int, nt.n) // blocked[i]: whom host i does not hear
	for x, sx := range side {
		for y, sy := range side {
			if sx != sy && x != Client {
				blocked[x] = append(blocked[x], y)
			}
		}
	}
	return nt.apply(blocked)
}

// Isolate cuts host i off from every other host (the test still reaches
// it). It replaces any earlier partition.
func (nt *Net) Isolate(i int) error { return nt.Isolation(i).Inject(context.Background()) }

// Bridge cuts a from b while host bridge, in neither, talks to both: the
// "bridge" partition of Jepsen, where the two sides can each reach a
// majority through one node. It replaces any earlier partition.
func (nt *Net) Bridge(a, b []int, bridge int) error {
	if slices.Contains(a, bridge) || slices.Contains(b, bridge) {
		return fmt.Errorf("netns: bridge host %d is in a side", bridge)
	}
	nt.check(bridge)
	return nt.Partition(a, b)
}

// Heal removes every partition.
func (nt *Net) Heal() error { return nt.apply(make([][]int, nt.n)) }

// apply replaces each host's INPUT rules with a DROP per host it must not
// hear. iptables-restore swaps the chain at once, so a host never sees a
// half-written rule set.
func (nt *Net) apply(blocked [][]int) error {
	nt.mu.Lock()
	defer nt.mu.Unlock()
	if nt.mu.closed {
		return fmt.Errorf("netns: closed")
	}
	for i := range nt.n {
		var rules strings.Builder
		rules.WriteString("*filter\n:INPUT ACCEPT [0:0]\n")
		slices.Sort(blocked[i])
		for _, peer := range slices.Compact(blocked[i]) {
			fmt.Fprintf(&rules, "-A INPUT -s %s/32 -j DROP\n", nt.IP(peer))
		}
		rules.WriteString("COMMIT\n")
		cmd := exec.CommandContext(context.Background(), "ip", "netns", "exec", nt.Namespace(i), "iptables-restore", "-w", "5")
		cmd.Stdin = strings.NewReader(rules.String())
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("netns: iptables-restore in host %d: %v: %s", i, err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}
