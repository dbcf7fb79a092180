package broker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/stratalog/strata/pkg/client"
	"slices"
	"sync"
	"testing"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/brokertest"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/broker"
	"github.com/stratalog/strata/pkg/record"
)

// copyTestBatches: 1 KiB records in 1 MiB batches, as the client sends
// them by default; about 210 MB in all.
const (
	copyTestBatches   = 210
	copyTestPerBatch  = 1000
	copyTestValueSize = 1000
)

// TestMoveCopiesALargeLogAndResumes moves a partition whose log start
// retention has already deleted, so the new replica must copy the
// leader's log (a snapshot install), ~200 MB of it. Its broker is
// restarted a third of the way through the copy: the copy resumes from
// what it had staged instead of starting over, describe and the move
// report the copy's progress, and the new replica ends with the leader's
// records.
func TestMoveCopiesALargeLogAndResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and copies 200 MB")
	}
	// The copy is throttled to last about 2 s, so that the leader's
	// heartbeats (every 0.4-0.8 s with test brokers' tuning) reach the
	// copying replica meanwhile.
	const copyRate = 100 << 20
	c := brokertest.StartCluster(t, 3, func(cfg *broker.Config) {
		cfg.RetentionCheckInterval = 100 * time.Millisecond
		cfg.LogCopyBytesPerSecond = copyRate
	})
	addrs := c.APIAddrs()
	cl := newClient(t, addrs)
	a := cl.Admin()
	if _, err := a.CreateTopic(ctx(t), "big", 1, 2, map[string]string{"segment.bytes": fmt.Sprint(16 << 20)}); err != nil {
		t.Fatal(err)
	}
	d := adminWaitInSync(t, a, "big")
	replicas := d.Partitions[0].Replicas
	var target uint32 // the broker without a replica: the move's new one
	for id := uint32(1); id <= 3; id++ {
		if !slices.Contains(replicas, id) {
			target = id
		}
	}

	// ~210 MB in 1 MiB batches.
	recs := make([]record.Record, copyTestPerBatch)
	for i := range recs {
		recs[i] = record.Record{Key: fmt.Appendf(nil, "k%d", i), Value: bytes.Repeat([]byte{'v'}, copyTestValueSize), Timestamp: time.Now()}
	}
	batch, err := record.Encode(recs, record.EncodeOptions{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1})
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	for range copyTestBatches {
		onLeader(t, addrs, func(c v1.StrataClient) (int64, error) {
			resp, err := c.Produce(ctx(t), &v1.ProduceRequest{Topic: "big", Partitions: []*v1.ProducePartition{{Partition: 0, Batches: batch}}})
			if err != nil {
				return 0, err
			}
			return resp.Partitions[0].BaseOffset, apierr.FromProto(resp.Partitions[0].Error)
		})
	}
	t.Logf("produced %d MB in %s", copyTestBatches*len(batch)>>20, time.Since(started).Round(time.Millisecond))
	// Retention deletes the log's first segments on every replica: the
	// new replica cannot be caught up by replication.
	cut := int64(20 * copyTestPerBatch)
	segsBefore := map[uint32]int{}
	for _, id := range replicas {
		segsBefore[id] = segmentFiles(t, c.Configs[id-1], "big")
	}
	if start, err := deleteRecords(t, addrs, "big", cut); err != nil || start != cut {
		t.Fatalf("delete-records before %d: %d, %v", cut, start, err)
	}
	var lead *v1.ReplicaState
	eventually(t, "the leader deletes the segments below the log start", func() bool {
		for id, st := range replicaStates(t, c, replicas...) {
			if st.Role == "leader" && st.LogStartOffset == cut && segmentFiles(t, c.Configs[id-1], "big") < segsBefore[id] {
				lead = st
				return true
			}
		}
		return false
	})
	lead = replicaStates(t, c, lead.NodeId)[lead.NodeId] // read after the deletion
	total := lead.SizeBytes
	servedBefore := lead.CopyServedBytes

	// The move, through a broker that stays up.
	var via []string
	for _, id := range replicas {
		via = append(via, c.Broker(id).APIAddr())
	}
	var (
		mu      sync.Mutex
		reports []client.MoveProgress
	)
	moveDone := make(chan error, 1)
	moveCtx, cancelMove := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancelMove()
	go func() {
		moveDone <- newClient(t, via).Admin().MovePartition(moveCtx, "big", 0, []uint32{lead.NodeId, target}, func(m client.MoveProgress) {
			mu.Lock()
			reports = append(reports, m)
			mu.Unlock()
		})
	}()

	// A third of the way: the copying replica hears its leader, describe
	// shows the copy; then its broker restarts.
	copying := func() *v1.ReplicaState {
		resp, err := dialInternal(t, c.Broker(target)).ReplicaStatus(ctx(t), &v1.ReplicaStatusRequest{})
		if err != nil || len(resp.Replicas) == 0 {
			return nil
		}
		return resp.Replicas[0]
	}
	waitCopy := func(what string, cond func(st *v1.ReplicaState) bool) *v1.ReplicaState {
		t.Helper()
		var st *v1.ReplicaState
		deadline := time.Now().Add(2 * time.Minute)
		for st = copying(); st == nil || !cond(st); st = copying() {
			select {
			case err := <-moveDone:
				t.Fatalf("the move ended (%v) before %s", err, what)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("not within 2 minutes: %s (last state %v)", what, st)
			}
			time.Sleep(20 * time.Millisecond) // polling another broker's progress; nothing to wait on
		}
		return st
	}
	moveStarted := time.Now()
	// The copying replica's raft hears its leader (heartbeats) while the
	// copy runs; a vote during a copy is TestInstallCopiesOffRaftsMainLoop's.
	waitCopy("a heartbeat during the copy", func(st *v1.ReplicaState) bool {
		return st.Copying && st.CopyBytes > 0 && st.LastContactMs >= 0 && st.LastContactMs < 1000
	})
	st := waitCopy("a third of the log copied", func(st *v1.ReplicaState) bool { return st.CopyBytes >= total/3 })
	if !st.Copying || st.CopyTotalBytes < total*9/10 {
		t.Fatalf("the copying replica: copying %v, %d of %d bytes; want a running copy of ~%d bytes",
			st.Copying, st.CopyBytes, st.CopyTotalBytes, total)
	}
	d, err = a.DescribeTopic(ctx(t), "big")
	if err != nil {
		t.Fatal(err)
	}
	var lag *client.ReplicaLag
	for _, l := range d.Partitions[0].Lagging {
		if l.NodeID == target {
			lag = &l
		}
	}
	if lag == nil || !lag.Copying || lag.CopiedBytes == 0 || lag.OffsetsBehind <= 0 || lag.BytesBehind <= 0 {
		t.Fatalf("describe during the copy: lagging %v; want broker %d copying, behind in offsets and bytes", d.Partitions[0].Lagging, target)
	}
	staged := st.CopyBytes
	c.Stop(target)
	c.Restart(target)
	waitCopy("the copy to go on after the restart", func(st *v1.ReplicaState) bool { return st.CopyBytes > staged || st.LogEndOffset > 0 })

	select {
	case err := <-moveDone:
		if err != nil {
			t.Fatalf("move: %v", err)
		}
	case <-moveCtx.Done():
		t.Fatal("the move did not finish within 5 minutes")
	}
	if took, least := time.Since(moveStarted), time.Duration(float64(total)/copyRate*0.8*float64(time.Second)); took < least {
		t.Errorf("the move took %s; --log-copy-rate %d allows no less than %s", took, copyRate, least)
	}
	final := replicaStates(t, c, lead.NodeId, target)
	served := final[lead.NodeId].CopyServedBytes - servedBefore
	t.Logf("log of %d bytes; the leader served %d to the copy (%d again after the restart at %d staged)", total, served, served-total, staged)
	if served-total >= total/2 || served < total*9/10 {
		t.Fatalf("the leader served %d bytes to copy a log of %d: the copy started over instead of resuming (or did not happen)", served, total)
	}
	if got, want := final[target].LogEndOffset, final[lead.NodeId].HighWatermark; got != want || final[target].LogStartOffset != cut {
		t.Fatalf("the new replica: log %d..%d, want %d..%d", final[target].LogStartOffset, got, cut, want)
	}
	mu.Lock()
	sawCopy := false
	for _, m := range reports {
		sawCopy = sawCopy || m.CopyTotalBytes > 0
	}
	mu.Unlock()
	if !sawCopy {
		t.Error("the move never reported the log copy's progress")
	}
	// The new replica serves the same records: read the last batch there.
	if _, err := a.TransferLeader(ctx(t), "big", 0, target); err != nil {
		t.Fatalf("transfer to %d: %v", target, err)
	}
	var fetched *v1.FetchPartitionResult
	eventually(t, fmt.Sprintf("broker %d serving as the leader", target), func() bool {
		resp, err := dial(t, c.Broker(target).APIAddr()).Fetch(ctx(t), &v1.FetchRequest{
			Partitions: []*v1.FetchPartition{{Topic: "big", Partition: 0, Offset: cut}}, MaxBytes: 2 << 20})
		if err != nil {
			t.Fatal(err)
		}
		fetched = resp.Partitions[0]
		return !errors.Is(apierr.FromProto(fetched.Error), apierr.ErrNotLeader)
	})
	if err := apierr.FromProto(fetched.Error); err != nil || len(fetched.Batches) < len(batch) {
		t.Fatalf("fetch at %d from the new replica: %v, %d bytes", cut, err, len(fetched.Batches))
	}
	h, err := record.ParseHeader(fetched.Batches)
	if err != nil || h.BaseOffset != cut || !bytes.Equal(fetched.Batches[record.HeaderSize:len(batch)], batch[record.HeaderSize:]) {
		t.Fatalf("the new replica's batch at %d differs from the one produced (header %+v, %v)", cut, h, err)
	}
}
