// Package netns runs a fault-injection test's hosts in Linux network
// namespaces it creates, joined by one bridge, with partitions made of
// iptables rules inside each host's namespace.
//
// It owns, for one Net: a namespace per host (an eth0 with the host's IP
// and a loopback), a switch namespace holding the bridge, and a veth pair
// from the root namespace to the bridge whose root end is the hosts'
// gateway. The test process stays in the root namespace and reaches every
// host's IP through it. The bridge lives in its own namespace on purpose:
// a bridge in the root namespace would send the hosts' traffic through the
// machine's FORWARD chain (br_netfilter), which Docker sets to DROP.
//
// Names carry the creating process's pid (namespaces "strata-<pid>-<seq>-h<i>",
// the root veth "sn<pid hex><seq hex>"), so New removes what a dead
// process left behind, and concurrent runs do not collide. Subnets are
// chosen from 10.213.0.0/16 under a machine-wide lock (/run/lock/strata-netns.lock).
//
// Usage:
//
//	n, err := netns.New(ctx, 3)
//	if err != nil { ... }
//	defer n.Close()
//	cmd := n.Command(ctx, 0, "strata-broker", "--api-addr", n.IP(0)+":9290", ...)
//	cmd.Start()
//	n.Isolate(0)  // host 0 hears no other host; the test still reaches it
//	n.Heal()
//
// A partition drops packets (iptables DROP on each host's INPUT), in both
// directions, for every protocol: a connect or a send across it times out
// rather than failing at once, as on a real network that loses a link.
// Established connections are cut too (no conntrack exception).
//
// The caller's duties:
//  1. Run as root on Linux with ip (iproute2) and iptables installed.
//  2. Stop every process started with Command before Close: a namespace
//     with a process still in it outlives Close (its name is removed, its
//     interfaces stay until the process exits).
//  3. Call Close, also on failure paths: it removes the namespaces, the
//     bridge and the root veth.
//  4. Partition, Isolate, Bridge and Heal may be called from any
//     goroutine; each replaces the previous partition as a whole.
package netns
