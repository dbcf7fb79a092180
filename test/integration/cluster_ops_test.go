package integration

import (
	"context"
	"fmt"
	"slices"
	"syscall"
	"time"

	"github.com/stratalog/strata/pkg/client"
)

// pause stops the node's process with SIGSTOP: it keeps its sockets open
// and answers nothing, as a broker in a long GC pause or a frozen VM would.
func (c *testCluster) pause(nd *node) {
	c.t.Helper()
	if err := nd.proc.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		c.t.Fatalf("SIGSTOP node %d: %v", nd.id, err)
	}
}

// resume continues a paused node with SIGCONT.
func (c *testCluster) resume(nd *node) {
	c.t.Helper()
	if err := nd.proc.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		c.t.Fatalf("SIGCONT node %d: %v", nd.id, err)
	}
}

// client makes a client that knows only the given nodes (so no call of
// the test waits on a paused one), closed at test end.
func (c *testCluster) client(nodes ...*node) *client.Client {
	c.t.Helper()
	var addrs []string
	for _, nd := range nodes {
		addrs = append(addrs, nd.api)
	}
	cl, err := client.New(addrs, client.RetryTimeout(10*time.Second))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cl.Close() })
	return cl
}

// others is every node but the ones given.
func (c *testCluster) others(not ...*node) []*node {
	var out []*node
	for _, nd := range c.nodes {
		if !slices.Contains(not, nd) {
			out = append(out, nd)
		}
	}
	return out
}

// partitionOf describes one partition.
func partitionOf(ctx context.Context, adm *client.Admin, topic string, p int32) (client.PartitionDetail, error) {
	d, err := adm.DescribeTopic(ctx, topic)
	if err != nil {
		return client.PartitionDetail{}, err
	}
	for _, pd := range d.Partitions {
		if pd.Partition == p {
			return pd, nil
		}
	}
	return client.PartitionDetail{}, fmt.Errorf("topic %s has no partition %d", topic, p)
}

// leaderIs: the partition is led by a node other than 0 and, when want is
// not 0, by want; it returns the leader.
func leaderIs(ctx context.Context, adm *client.Admin, topic string, p int32, want uint32) (uint32, error) {
	pd, err := partitionOf(ctx, adm, topic, p)
	if err != nil {
		return 0, err
	}
	switch l := pd.Leader; {
	case l == 0:
		return 0, fmt.Errorf("%s/%d has no leader", topic, p)
	case want != 0 && l != want:
		return l, fmt.Errorf("%s/%d is led by %d, not %d", topic, p, l, want)
	default:
		return l, nil
	}
}
