package replication

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/pkg/record"
)

// idemBatch is a batch of n records from producer id at epoch, its first
// record numbered seq; tag names its values.
func idemBatch(t testing.TB, tag string, id int64, epoch int16, seq int32, n int) []byte {
	t.Helper()
	recs := make([]record.Record, n)
	for i := range recs {
		recs[i] = record.Record{Value: []byte(tag + "-" + string(rune('a'+i))), Timestamp: time.UnixMilli(1_700_000_000_000)}
	}
	b, err := record.Encode(recs, record.EncodeOptions{ProducerID: id, ProducerEpoch: epoch, BaseSequence: seq})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestIdempotentProducer: through the leader of a 3-replica group, a
// retried batch is answered with its first offsets and stored once (also
// when both copies are in flight at once), a gap is refused as out of
// order, an older epoch as fenced, and every replica holds the same log
// with no second copy.
func TestIdempotentProducer(t *testing.T) {
	c := newCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l := c.leader()
	apply := func(b []byte) (int64, int64, error) { return l.g.Apply(ctx, [][]byte{b}) }

	b1 := idemBatch(t, "b1", 7, 0, 0, 4)
	if base, last, err := apply(b1); err != nil || base != 0 || last != 3 {
		t.Fatalf("first batch: %d..%d, %v", base, last, err)
	}
	if base, last, err := apply(idemBatch(t, "b1", 7, 0, 0, 4)); err != nil || base != 0 || last != 3 {
		t.Fatalf("its retry: %d..%d, %v; want the first offsets 0..3", base, last, err)
	}
	// Two copies in flight at once: one is stored, both answer the same.
	b2 := idemBatch(t, "b2", 7, 0, 4, 3)
	var wg sync.WaitGroup
	var got [2][2]int64
	var errs [2]error
	for i := range 2 {
		wg.Go(func() { got[i][0], got[i][1], errs[i] = apply(b2[:len(b2):len(b2)]) })
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil || got[0] != got[1] || got[0] != [2]int64{4, 6} {
		t.Fatalf("two copies at once: %v %v, %v %v; want 4..6 twice", got[0], got[1], errs[0], errs[1])
	}
	if _, _, err := apply(idemBatch(t, "gap", 7, 0, 9, 1)); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("a gap: %v, want out of order", err)
	}
	if _, _, err := apply(idemBatch(t, "unknown", 8, 0, 3, 1)); !errors.Is(err, ErrUnknownProducer) {
		t.Fatalf("an unknown producer mid-sequence: %v", err)
	}
	if base, _, err := apply(idemBatch(t, "e1", 7, 1, 0, 2)); err != nil || base != 7 {
		t.Fatalf("a new epoch from 0: at %d, %v", base, err)
	}
	if _, _, err := apply(idemBatch(t, "e0", 7, 0, 7, 1)); !errors.Is(err, ErrProducerFenced) {
		t.Fatalf("the old epoch: %v, want fenced", err)
	}
	// Batches without a producer id are never deduplicated.
	plain := testBatch(t, "plain", 1, 1)
	apply(plain)
	if base, _, err := apply(testBatch(t, "plain", 1, 1)); err != nil || base != 10 {
		t.Fatalf("a non-idempotent batch again: at %d, %v; want stored again at 10", base, err)
	}
	hwm := l.g.HighWatermark()
	if hwm != 11 {
		t.Fatalf("high watermark %d, want 11 (4+3+2+1+1 records stored)", hwm)
	}
	c.converge(hwm)
	log := c.sameLogs(hwm)
	if n := len(decodeValues(t, log, 0, false)); n != 10 { // "plain-0" twice: 10 distinct values
		t.Fatalf("%d distinct values in the log, want 10", n)
	}
}

// TestIdempotentAcrossFailover: after the leader dies, a retry sent to
// the new leader is recognised from the state the new leader kept as a
// follower; after every replica restarts from its snapshot and log, too.
func TestIdempotentAcrossFailover(t *testing.T) {
	c := newCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var offsets [][2]int64
	for i := range 5 {
		base, last, err := c.apply(ctx, idemBatch(t, "f", 11, 0, int32(i*3), 3))
		if err != nil {
			t.Fatal(err)
		}
		offsets = append(offsets, [2]int64{base, last})
	}
	old := c.leader()
	c.converge(old.g.HighWatermark())
	c.stop(old)
	for i := range 5 {
		base, last, err := c.apply(ctx, idemBatch(t, "f", 11, 0, int32(i*3), 3))
		if err != nil || [2]int64{base, last} != offsets[i] {
			t.Fatalf("retry %d at the new leader: %d..%d, %v; want %v", i, base, last, err, offsets[i])
		}
	}
	// A snapshot on every replica, more batches after it, then restart
	// them all: the state is the snapshot's plus the replayed tail.
	for _, nd := range c.open_() {
		if err := nd.g.raft.Snapshot().Error(); err != nil {
			t.Fatal(err)
		}
	}
	base, last, err := c.apply(ctx, idemBatch(t, "g", 11, 0, 15, 2))
	if err != nil {
		t.Fatal(err)
	}
	c.restart(old)
	for _, nd := range c.open_() {
		c.stop(nd)
	}
	for _, nd := range c.nodes {
		c.restart(nd)
	}
	for i, b := range [][]byte{idemBatch(t, "f", 11, 0, 12, 3), idemBatch(t, "g", 11, 0, 15, 2)} {
		want := [2]int64{offsets[4][0], offsets[4][1]}
		if i == 1 {
			want = [2]int64{base, last}
		}
		b2, l2, err := c.apply(ctx, b)
		if err != nil || [2]int64{b2, l2} != want {
			t.Fatalf("retry %d after a restart of all: %d..%d, %v; want %v", i, b2, l2, err, want)
		}
	}
	if _, _, err := c.apply(ctx, idemBatch(t, "h", 11, 0, 17, 1)); err != nil {
		t.Fatalf("the next batch in sequence after the restart: %v", err)
	}
	hwm := c.leader().g.HighWatermark()
	if hwm != 18 {
		t.Fatalf("high watermark %d, want 18", hwm)
	}
	c.converge(hwm)
	c.sameLogs(hwm)
}
