package main

// The partition, broker and cluster-health commands against in-process
// clusters of real brokers.

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/brokertest"
)

// eventuallyCLI runs the command until check accepts its result, failing
// after 20 s.
func eventuallyCLI(t *testing.T, what, addr string, check func(result) bool, args ...string) result {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := runCLI(t, addr, "", args...)
		if check(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20s; last: exit %d, stdout %q, stderr %q", what, r.code, r.stdout, r.stderr)
		}
		time.Sleep(100 * time.Millisecond) // polling the cluster's state; there is nothing to wait on
	}
}

func TestCLIClusterHealth(t *testing.T) {
	c := brokertest.StartCluster(t, 3)
	addr := c.Broker(1).APIAddr()
	runCLI(t, addr, "", "topic", "create", "h", "-p", "2", "-r", "3").ok(t)

	r := runCLI(t, addr, "", "cluster", "health", "--exit-when-healthy", "--timeout", "20s").ok(t)
	if !strings.Contains(r.stdout, "HEALTHY") || !strings.Contains(r.stdout, "yes") {
		t.Errorf("healthy report: %q", r.stdout)
	}
	r = runCLI(t, addr, "", "cluster", "health", "-o", "json").ok(t)
	var h healthJSON
	if err := json.Unmarshal([]byte(r.stdout), &h); err != nil || !h.Healthy || h.Topics != 1 || h.Partitions != 2 || h.Brokers != 3 || h.Down != 0 {
		t.Errorf("json report %q: %+v %v", r.stdout, h, err)
	}

	r = runCLI(t, addr, "", "cluster", "info").ok(t)
	if !strings.Contains(r.stdout, "CONTROLLER") || strings.Count(r.stdout, "*") != 1 {
		t.Errorf("cluster info marks no controller: %q", r.stdout)
	}

	// One of three replicas down: leaders stay, replicas fall out of sync.
	c.Stop(3)
	// (Partitions broker 3 led are leaderless until their election ends.)
	r = eventuallyCLI(t, "health reports under-replication only", addr, func(r result) bool {
		return r.code != 0 && strings.Contains(r.stdout, "under-replicated") && !strings.Contains(r.stdout, "leaderless") &&
			strings.Contains(r.stderr, "1 broker down")
	}, "cluster", "health")
	// Stopped: "left" through gossip, or "dead" once its raft port
	// refuses, whichever this broker learnt first.
	if !strings.Contains(r.stderr, "not healthy: 1 broker down, 2 partitions under-replicated (broker 3 ") || !strings.Contains(r.stderr, ", h/0, h/1)") {
		t.Errorf("unhealthy report: stdout %q stderr %q", r.stdout, r.stderr)
	}
	r = runCLI(t, addr, "", "cluster", "health", "--exit-when-healthy", "--timeout", "1s")
	if r.code == 0 || !strings.Contains(r.stderr, "not healthy after 1s") || !strings.Contains(r.stderr, "under-replicated") {
		t.Errorf("exit-when-healthy on an unhealthy cluster: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestCLIClusterHealthCountsBrokers: a broker down makes the cluster
// unhealthy even when no partition is affected (here: no topic at all).
func TestCLIClusterHealthCountsBrokers(t *testing.T) {
	c := brokertest.StartCluster(t, 3)
	addr := c.Broker(1).APIAddr()
	r := runCLI(t, addr, "", "cluster", "health", "--exit-when-healthy", "--timeout", "20s").ok(t)
	if !strings.Contains(r.stdout, "BROKERS") {
		t.Errorf("report without brokers: %q", r.stdout)
	}
	c.Stop(2)
	r = eventuallyCLI(t, "health counts the stopped broker", addr, func(r result) bool { return r.code != 0 }, "cluster", "health", "-o", "json")
	var h healthJSON
	if err := json.Unmarshal([]byte(r.stdout), &h); err != nil || h.Healthy || h.Brokers != 3 || h.Down != 1 || len(h.BrokersNotAlive) != 1 || h.BrokersNotAlive[0].NodeID != 2 {
		t.Errorf("json report %q: %+v %v", r.stdout, h, err)
	}
	if !strings.Contains(r.stderr, "1 broker down (broker 2 ") {
		t.Errorf("stderr %q", r.stderr)
	}
}

func TestCLIPartitionAdmin(t *testing.T) {
	c := brokertest.StartCluster(t, 3)
	c.Add()
	addr := c.Broker(1).APIAddr()
	runCLI(t, addr, "", "topic", "create", "pa", "-p", "1", "-r", "3").ok(t)
	runCLI(t, addr, "", "cluster", "health", "--exit-when-healthy", "--timeout", "20s").ok(t)
	runCLI(t, addr, "one\ntwo\n", "produce", "pa").ok(t)

	r := runCLI(t, addr, "", "partition", "transfer-leader", "pa/0", "--to", "3").ok(t)
	if r.stdout != "pa/0 is now led by broker 3\n" {
		t.Errorf("transfer-leader: %q", r.stdout)
	}

	r = runCLI(t, addr, "", "partition", "move", "pa/0", "--replicas", "2,3,4", "-o", "json").ok(t)
	var p partitionJSON
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil || len(p.Replicas) != 3 || p.Replicas[0] != 2 || p.Replicas[2] != 4 {
		t.Errorf("move result %q: %+v %v", r.stdout, p, err)
	}
	if !strings.Contains(r.stderr, "pa/0: adding 4 as non-voter\n") || !strings.HasSuffix(r.stderr, "pa/0: done\n") {
		t.Errorf("move progress: %q", r.stderr)
	}

	r = runCLI(t, addr, "", "broker", "decommission", "2").ok(t)
	if !strings.Contains(r.stdout, "[1/1] pa/0: done\n") || !strings.HasSuffix(r.stdout, "broker 2 holds no partition replicas now (1 moved); it can be stopped\n") {
		t.Errorf("decommission: %q", r.stdout)
	}
	runCLI(t, addr, "", "cluster", "health", "--exit-when-healthy", "--timeout", "20s").ok(t)
	r = runCLI(t, addr, "", "consume", "pa", "-n", "2").ok(t)
	if r.stdout != "one\ntwo\n" {
		t.Errorf("records after moves: %q", r.stdout)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"partition", "transfer-leader", "pa", "--to", "1"}, `"pa": want TOPIC/PARTITION`},
		{[]string{"partition", "transfer-leader", "pa/0"}, "--to NODE is required"},
		{[]string{"partition", "move", "pa/0", "--replicas", "1,x"}, "want node ids"},
		{[]string{"partition", "move", "pa/0", "--replicas", "1,1"}, "listed twice"},
		{[]string{"broker", "decommission", "zero"}, "want a node id"},
		{[]string{"broker", "decommission", "9"}, "broker 9 is not registered"},
	} {
		r := runCLI(t, addr, "", tc.args...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q, want %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
}

func TestCLIPartitionVerify(t *testing.T) {
	c := brokertest.StartCluster(t, 3)
	addr := c.Broker(1).APIAddr()
	runCLI(t, addr, "", "topic", "create", "pv", "-p", "2", "-r", "3").ok(t)
	runCLI(t, addr, strings.Repeat("a record\n", 500), "produce", "pv").ok(t)

	r := runCLI(t, addr, "", "partition", "verify", "pv").ok(t)
	if strings.Count(r.stdout, "replicas agree") != 2 {
		t.Errorf("verify of a healthy topic: %q", r.stdout)
	}
	r = runCLI(t, addr, "", "partition", "verify", "pv/1", "-o", "json").ok(t)
	var got []verifyJSON
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || len(got) != 1 || !got[0].Agree ||
		got[0].FirstDifference != -1 || len(got[0].Replicas) != 3 || got[0].Partition != 1 {
		t.Errorf("json report %q: %+v %v", r.stdout, got, err)
	}
	// A replica down: the others are compared, and the command says so.
	c.Stop(3)
	r = runCLI(t, addr, "", "partition", "verify", "pv/0")
	if r.code == 0 || !strings.Contains(r.stdout, "broker 3") {
		t.Errorf("verify with a replica down: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}
