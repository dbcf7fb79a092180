package netns

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stratalog/strata/pkg/client"
	"github.com/stratalog/strata/test/chaos/internal/chaostest"
)

func buildBroker(t *testing.T) string { return chaostest.BuildBroker(t) }

var listening = regexp.MustCompile(`listening: api=(\S+) http=`)

// Each broker binds its host's IP; every host has its own port space, so
// the ports are the same on every host.
const apiPort, httpPort, raftPort, gossipPort = "9290", "9291", "9292", "9293"

// startBrokers starts one strata-broker per host of nt, a cluster of all
// of them, and waits for each to print its listening line. They are
// killed at test end; their logs are printed if the test failed.
func startBrokers(t *testing.T, ctx context.Context, nt *Net, bin string) []string {
	t.Helper()
	dir := t.TempDir()
	var joins, apis []string
	for i := range nt.N() {
		joins = append(joins, net.JoinHostPort(nt.IP(i), gossipPort))
		apis = append(apis, net.JoinHostPort(nt.IP(i), apiPort))
	}
	for i := range nt.N() {
		ip := nt.IP(i)
		logPath := filepath.Join(dir, fmt.Sprintf("node%d.log", i+1))
		lf, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		cmd := nt.Command(context.Background(), i, bin,
			"--node-id", fmt.Sprint(i+1), "--data-dir", filepath.Join(dir, fmt.Sprintf("node%d", i+1)),
			"--api-addr", net.JoinHostPort(ip, apiPort), "--http-addr", net.JoinHostPort(ip, httpPort),
			"--raft-addr", net.JoinHostPort(ip, raftPort), "--gossip-addr", net.JoinHostPort(ip, gossipPort),
			"--bootstrap-expect", fmt.Sprint(nt.N()), "--join", strings.Join(joins, ","), "--cluster-secret", chaostest.ClusterSecret,
			"--fsync", "always", "--log-level", "info")
		cmd.Stderr = lf
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lf.Close()
		waited := make(chan struct{})
		addr := make(chan string, 1)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if m := listening.FindStringSubmatch(sc.Text()); m != nil {
					addr <- m[1]
				}
			}
		}()
		go func() { cmd.Wait(); close(waited) }()
		t.Cleanup(func() {
			cmd.Process.Signal(syscall.SIGKILL)
			<-waited
			if t.Failed() {
				b, _ := os.ReadFile(logPath)
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				t.Logf("---- last lines of node %d's log ----\n%s", i+1, strings.Join(lines[max(0, len(lines)-40):], "\n"))
			}
		})
		select {
		case a := <-addr:
			if a != apis[i] {
				t.Fatalf("node %d listens on %s, want %s", i+1, a, apis[i])
			}
		case <-waited:
			t.Fatalf("node %d exited before listening: %v", i+1, cmd.ProcessState)
		case <-time.After(30 * time.Second):
			t.Fatalf("node %d did not listen within 30s", i+1)
		}
	}
	return apis
}

func poll(ctx context.Context, timeout time.Duration, cond func(ctx context.Context) error) error {
	return chaostest.Poll(ctx, timeout, 3*time.Second, cond)
}

// brokerStates asks the broker at addr alone for its view of who is alive.
func brokerStates(ctx context.Context, addr string) (map[uint32]string, error) {
	cl, err := client.New([]string{addr}, client.RetryTimeout(0))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	md, err := cl.Admin().Metadata(ctx)
	if err != nil {
		return nil, err
	}
	if md.ControllerID == 0 {
		return nil, fmt.Errorf("%s names no controller", addr)
	}
	states := map[uint32]string{}
	for _, b := range md.Brokers {
		states[b.NodeID] = b.State
	}
	return states, nil
}

func partitionDesc(ctx context.Context, adm *client.Admin, topic string, p int32) (client.PartitionDetail, error) {
	d, err := adm.DescribeTopic(ctx, topic)
	if err != nil {
		return client.PartitionDetail{}, err
	}
	for _, pd := range d.Partitions {
		if pd.Partition == p {
			return pd, nil
		}
	}
	return client.PartitionDetail{}, fmt.Errorf("%s has no partition %d", topic, p)
}

func produceValues(ctx context.Context, p *client.Producer, topic string, part int32, prefix string, n int) (map[int64]string, error) {
	var recs []*client.Record
	for i := range n {
		recs = append(recs, &client.Record{Topic: topic, Partition: part, Value: fmt.Appendf(nil, "%s-%d", prefix, i)})
	}
	res := p.ProduceSync(ctx, recs...)
	if err := res.FirstErr(); err != nil {
		return nil, err
	}
	acked := map[int64]string{}
	for _, r := range res {
		acked[r.Record.Offset] = string(r.Record.Value)
	}
	return acked, nil
}

// TestIsolatedLeaderBrokers: three strata-broker processes, one per
// namespace. Isolating partition 0's leader cuts both Raft (TCP) and
// gossip (memberlist, UDP and TCP): the majority elects a new leader and
// takes writes, each side sees the other's brokers leave the alive set,
// and after Heal every partition's replicas agree and every acknowledged
// record is read back at its offset.
func TestIsolatedLeaderBrokers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bin := buildBroker(t)
	nt, err := New(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := nt.Close(); err != nil {
			t.Error(err)
		}
	}()
	apis := startBrokers(t, ctx, nt, bin)
	allAlive := func(ctx context.Context) error {
		for _, a := range apis {
			st, err := brokerStates(ctx, a)
			if err != nil {
				return err
			}
			for id, s := range st {
				if s != "alive" || len(st) != len(apis) {
					return fmt.Errorf("%s sees %d as %s (%v)", a, id, s, st)
				}
			}
		}
		return nil
	}
	if err := poll(ctx, time.Minute, allAlive); err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(apis)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := cl.Admin()
	const topic = "netns"
	if _, err := adm.CreateTopic(ctx, topic, 3, 3, nil); err != nil {
		t.Fatal(err)
	}
	healthy := func(ctx context.Context) error {
		d, err := adm.DescribeTopic(ctx, topic)
		if err != nil {
			return err
		}
		for _, p := range d.Partitions {
			if p.Leader == 0 || len(p.InSyncReplicas) != 3 {
				return fmt.Errorf("partition %d: leader %d, in sync %v", p.Partition, p.Leader, p.InSyncReplicas)
			}
		}
		return nil
	}
	if err := poll(ctx, time.Minute, healthy); err != nil {
		t.Fatal(err)
	}
	prod := cl.NewProducer(client.RecordPartitioner(client.ManualPartitioner()), client.RequiredAcks(client.AcksQuorum))
	defer prod.Close(ctx)
	acked, err := produceValues(ctx, prod, topic, 0, "before", 200)
	if err != nil {
		t.Fatal(err)
	}
	pd, err := partitionDesc(ctx, adm, topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	old := pd.Leader
	isolated := int(old) - 1
	start := time.Now()
	if err := nt.Isolate(isolated); err != nil {
		t.Fatal(err)
	}
	t.Logf("isolated node %d, leader of %s/0", old, topic)

	// The majority side, asked alone, elects another leader.
	var majority []string
	for i, a := range apis {
		if i != isolated {
			majority = append(majority, a)
		}
	}
	mcl, err := client.New(majority)
	if err != nil {
		t.Fatal(err)
	}
	defer mcl.Close()
	var leader uint32
	if err := poll(ctx, time.Minute, func(ctx context.Context) error {
		pd, err := partitionDesc(ctx, mcl.Admin(), topic, 0)
		if err != nil {
			return err
		}
		if leader = pd.Leader; leader == 0 || leader == old {
			return fmt.Errorf("%s/0 led by %d", topic, leader)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("node %d leads %s/0 %s after the cut", leader, topic, time.Since(start).Round(time.Millisecond))

	mprod := mcl.NewProducer(client.RecordPartitioner(client.ManualPartitioner()), client.RequiredAcks(client.AcksQuorum))
	defer mprod.Close(ctx)
	during, err := produceValues(ctx, mprod, topic, 0, "during", 200)
	if err != nil {
		t.Fatalf("produce on the majority side: %v", err)
	}
	for o, v := range during {
		acked[o] = v
	}

	// Gossip is cut too: each side sees the other leave the alive set.
	if err := poll(ctx, time.Minute, func(ctx context.Context) error {
		for i, a := range apis {
			st, err := brokerStates(ctx, a)
			if err != nil {
				return err
			}
			for id, s := range st {
				cut := (i == isolated) != (int(id)-1 == isolated)
				if cut && s == "alive" {
					return fmt.Errorf("node %d still sees node %d alive", i+1, id)
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	if err := nt.Heal(); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := poll(ctx, 2*time.Minute, healthy); err != nil {
		t.Fatal(err)
	}
	t.Logf("healed: every partition in sync %s after Heal", time.Since(start).Round(time.Millisecond))
	// Brokers reconnect to failed ones every second (pkg/cluster's
	// reconnect), so gossip agrees soon after the partition heals, not
	// at memberlist's next 30 s state sync.
	if err := poll(ctx, 15*time.Second, allAlive); err != nil {
		t.Fatal(err)
	}
	t.Logf("healed: every broker sees all alive %s after Heal", time.Since(start).Round(time.Millisecond))
	for p := range int32(3) {
		var vr client.PartitionVerification
		if err := poll(ctx, time.Minute, func(ctx context.Context) error {
			vr, err = adm.VerifyPartition(ctx, topic, p)
			if err != nil {
				return err
			}
			for _, r := range vr.Replicas {
				if r.Error != "" {
					return fmt.Errorf("replica %d: %s", r.NodeID, r.Error)
				}
			}
			if len(vr.Replicas) != 3 {
				return fmt.Errorf("%d replicas compared", len(vr.Replicas))
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if !vr.Agree {
			t.Errorf("%s/%d: replicas differ at %d: %v", topic, p, vr.FirstDifference, vr.Replicas)
		}
		if p == 0 && vr.ToOffset < 400 {
			t.Errorf("%s/0: compared up to %d, want the 400 acknowledged", topic, vr.ToOffset)
		}
	}

	cs, err := cl.NewConsumer(topic, client.Partitions(0), client.StartAt(client.Earliest()), client.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	got := map[int64]string{}
	for len(got) < len(acked) {
		recs, err := cs.Poll(ctx)
		if err != nil {
			t.Fatalf("consume after %d records: %v", len(got), err)
		}
		for _, r := range recs {
			got[r.Offset] = string(r.Value)
		}
	}
	for o, v := range acked {
		if got[o] != v {
			t.Errorf("offset %d holds %q, acknowledged as %q", o, got[o], v)
		}
	}
}
