package diskfault

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/pkg/client"
	"github.com/stratalog/strata/test/chaos/internal/chaostest"
)

func freePort(t *testing.T, used map[string]bool) string { return chaostest.FreePort(t, used) }

// TestFullLeaderDisk: in a three-broker cluster, the disk of partition 0's
// leader fills up under produce. The full broker keeps running, and once
// its space is freed it catches up: the replicas agree and every
// acknowledged record reads back at its offset.
//
// Writes go on while it is full: two brokers with room are a majority.
// They used to stop for as long as the disk was full: the full leader
// failed to store its entries and stepped down, then campaigned again at
// once (the broker's early elections) and, its log being as long as any,
// won, over and over (0 records acknowledged in 20 s). Now it asks another
// voter to take over and abstains from early elections while its writes
// fail (replication/storefail.go).
func TestFullLeaderDisk(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bin := buildBroker(t)
	base := t.TempDir()
	vol, err := Mount(filepath.Join(base, "node1"), 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := vol.Close(); err != nil {
			t.Error(err)
		}
	}()
	used := map[string]bool{}
	type addrs struct{ api, http, raft, gossip string }
	var as []addrs
	var joins, apis []string
	for range 3 {
		a := addrs{freePort(t, used), freePort(t, used), freePort(t, used), freePort(t, used)}
		as = append(as, a)
		joins = append(joins, a.gossip)
		apis = append(apis, a.api)
	}
	var brokers []*broker
	for i, a := range as {
		dir := filepath.Join(base, fmt.Sprintf("node%d", i+1)) // node 1's is the volume
		logPath := filepath.Join(base, fmt.Sprintf("node%d.log", i+1))
		b := startBroker(t, bin, dir, logPath, "--node-id", fmt.Sprint(i+1),
			"--api-addr", a.api, "--http-addr", a.http, "--raft-addr", a.raft, "--gossip-addr", a.gossip,
			"--bootstrap-expect", "3", "--join", strings.Join(joins, ","), "--cluster-secret", chaostest.ClusterSecret)
		brokers = append(brokers, b)
		defer func() {
			if t.Failed() {
				t.Logf("---- node %d's log ----\n%s", i+1, tail(logPath, 60))
			}
		}()
	}
	cl, err := client.New(apis)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := cl.Admin()
	const topic = "fullleader"
	if err := poll(ctx, time.Minute, func(ctx context.Context) error {
		_, err := adm.CreateTopic(ctx, topic, 1, 3, map[string]string{"segment.bytes": fmt.Sprint(4 << 20)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := poll(ctx, time.Minute, func(ctx context.Context) error {
		d, err := adm.DescribeTopic(ctx, topic)
		if err != nil {
			return err
		}
		p := d.Partitions[0]
		if len(p.InSyncReplicas) != 3 {
			return fmt.Errorf("in sync %v", p.InSyncReplicas)
		}
		if p.Leader != 1 {
			if _, err := adm.TransferLeader(ctx, topic, 0, 1); err != nil {
				return err
			}
			return fmt.Errorf("led by %d", p.Leader)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	prod := cl.NewProducer(client.RequiredAcks(client.AcksQuorum), client.DeliveryTimeout(5*time.Second))
	h := &history{acked: map[int64]string{}}
	pctx, stopProducing := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); produceLoop(pctx, prod, topic, h) }()
	defer func() { stopProducing(); <-done; prod.Close(context.Background()) }()
	ackedN := func() int { h.mu.Lock(); defer h.mu.Unlock(); return len(h.acked) }
	if err := poll(ctx, time.Minute, func(context.Context) error {
		if n := ackedN(); n < 5000 {
			return fmt.Errorf("%d acknowledged", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	filled := time.Now()
	if err := vol.Fill(); err != nil {
		t.Fatal(err)
	}
	// Writes go on without node 1: two brokers with room are a majority.
	before := ackedN()
	window := time.Now().Add(20 * time.Second)
	_ = poll(ctx, 30*time.Second, func(context.Context) error {
		if ackedN() < before+5000 && time.Now().Before(window) {
			return fmt.Errorf("waiting")
		}
		return nil
	})
	during := ackedN() - before
	h.mu.Lock()
	t.Logf("node 1 full: %d more acknowledged in %s; %d sends failed", during, time.Since(filled).Round(time.Millisecond), len(h.errs))
	h.mu.Unlock()
	if during < 5000 {
		t.Errorf("only %d records acknowledged in the %s node 1's disk was full: the two brokers with room should take the writes", during, time.Since(filled).Round(time.Second))
	}
	if !brokers[0].running() {
		t.Fatalf("node 1 exited with a full disk: %v", brokers[0].cmd.ProcessState)
	}
	d, err := adm.DescribeTopic(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("while full: leader %d, in sync %v", d.Partitions[0].Leader, d.Partitions[0].InSyncReplicas)

	freed := time.Now()
	if err := vol.Unfill(); err != nil {
		t.Fatal(err)
	}
	stopProducing()
	<-done
	end := h.ackedEnd()
	var vr client.PartitionVerification
	if err := poll(ctx, 2*time.Minute, func(ctx context.Context) error {
		d, err := adm.DescribeTopic(ctx, topic)
		if err != nil {
			return err
		}
		if p := d.Partitions[0]; len(p.InSyncReplicas) != 3 {
			return fmt.Errorf("in sync %v", p.InSyncReplicas)
		}
		vr, err = adm.VerifyPartition(ctx, topic, 0)
		if err != nil {
			return err
		}
		if len(vr.Replicas) != 3 || vr.ToOffset < end {
			return fmt.Errorf("compared %d replicas up to %d, %d acknowledged", len(vr.Replicas), vr.ToOffset, end)
		}
		for _, r := range vr.Replicas {
			if r.Error != "" {
				return fmt.Errorf("node %d: %s", r.NodeID, r.Error)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("space freed: node 1 in sync again and compared within %s", time.Since(freed).Round(time.Millisecond))
	if !vr.Agree {
		t.Errorf("replicas differ from offset %d: %v", vr.FirstDifference, vr.Replicas)
	}
	checkAcked(t, h, readAll(ctx, t, apis[1], topic, end), "after freeing node 1's disk")
}
