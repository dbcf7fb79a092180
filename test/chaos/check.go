package chaos

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/stratalog/strata/pkg/client"
)

// logView is what the checker has read of one topic: per partition, the
// value id at each offset below next. Records below the high watermark
// never change, so each check reads only what is new; the final check
// reads everything again and compares.
type logView struct {
	topic         string
	parts         map[int32]*partView
	hwRegressions int // times a partition's high watermark was below what was read before
}

type partView struct {
	next int64 // first offset not read yet
	vals map[int64]valueID
}

func newLogView(topic string) *logView { return &logView{topic: topic, parts: map[int32]*partView{}} }

func (lv *logView) part(p int32) *partView {
	pv := lv.parts[p]
	if pv == nil {
		pv = &partView{vals: map[int64]valueID{}}
		lv.parts[p] = pv
	}
	return pv
}

// highWatermarks returns each partition's high watermark, asking its
// leader (ListOffsets LATEST). DescribeTopic's figure is not used: it
// comes from whichever broker answers, and was seen reporting 0 for a
// partition with data after a restart of every broker.
func highWatermarks(ctx context.Context, adm *client.Admin, topic string) (map[int32]int64, error) {
	d, err := adm.DescribeTopic(ctx, topic)
	if err != nil {
		return nil, err
	}
	hw := map[int32]int64{}
	for _, p := range d.Partitions {
		r, err := adm.ListOffsets(ctx, topic, p.Partition, client.OffsetSpecLatest, time.Time{})
		if err != nil {
			return nil, err
		}
		hw[p.Partition] = r.Offset
	}
	return hw, nil
}

// readRange reads partition p from `from` up to end through its leader,
// calling fn for each record in order. Offsets must rise strictly.
func readRange(ctx context.Context, cl *client.Client, topic string, p int32, from, end int64, fn func(off int64, value []byte) error) error {
	if from >= end {
		return nil
	}
	cs, err := cl.NewConsumer(topic, client.Partitions(p), client.StartAt(client.AtOffset(from)), client.ResetPolicy(client.NoReset()), client.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return err
	}
	defer cs.Close()
	last := from - 1
	for {
		pos, started := cs.Positions()[client.TopicPartition{Topic: topic, Partition: p}]
		if started && pos >= end {
			return nil
		}
		recs, err := cs.Poll(ctx)
		if err != nil {
			return fmt.Errorf("read %s/%d at %d (up to %d): %w", topic, p, pos, end, err)
		}
		for _, r := range recs {
			if r.Offset >= end {
				continue
			}
			if r.Offset <= last {
				return &counterexample{"order", fmt.Sprintf("%s/%d: offset %d read after offset %d: offsets do not rise strictly", topic, p, r.Offset, last)}
			}
			last = r.Offset
			if err := fn(r.Offset, r.Value); err != nil {
				return err
			}
		}
	}
}

// counterexample is a checker's finding: which property, and the case.
type counterexample struct {
	property string
	detail   string
}

func (c *counterexample) Error() string { return c.property + ": " + c.detail }

// catchUp reads what is new in every partition up to its high watermark
// into lv, checking each value's bytes, and that an offset read before
// still holds the same value (reading only new offsets, that cannot
// differ; the final re-read uses it).
func (lv *logView) catchUp(ctx context.Context, cl *client.Client) (read int, err error) {
	hw, err := highWatermarks(ctx, cl.Admin(), lv.topic)
	if err != nil {
		return 0, err
	}
	parts := make([]int32, 0, len(hw))
	for p := range hw {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	for _, p := range parts {
		pv := lv.part(p)
		if hw[p] < pv.next {
			// A leader elected a moment ago may not know the commit
			// index yet. Counted, not failed: reads below it are checked
			// by the register workload's linearizability checker.
			lv.hwRegressions++
			continue
		}
		err := readRange(ctx, cl, lv.topic, p, pv.next, hw[p], func(off int64, value []byte) error {
			id, err := parseValue(value)
			if err != nil {
				return &counterexample{"value", fmt.Sprintf("%s/%d offset %d: %v", lv.topic, p, off, err)}
			}
			if old, ok := pv.vals[off]; ok && old != id {
				return &counterexample{"two-values", fmt.Sprintf("%s/%d offset %d held value %s, now %s", lv.topic, p, off, old, id)}
			}
			pv.vals[off] = id
			read++
			return nil
		})
		if err != nil {
			return read, err
		}
		pv.next = max(pv.next, hw[p])
	}
	return read, nil
}

// checkAcked: every acknowledged produce to the topic below what lv has
// read is at its offset; with final, every one must have been read. It
// counts the acknowledged records checked and lost, and returns the first
// lost one as a counterexample.
func (lv *logView) checkAcked(ops []produceOp, final bool) (checked, lost int, first error) {
	fail := func(op produceOp, why string) {
		lost++
		if first == nil {
			first = &counterexample{"lost", fmt.Sprintf("value %s acknowledged at %s/%d offset %d at %s: %s", op.id, lv.topic, op.partition, op.offset, op.complete.Format("15:04:05.000"), why)}
		}
	}
	for _, op := range ops {
		if op.err != nil || op.topic != lv.topic {
			continue
		}
		pv := lv.part(op.partition)
		if op.offset >= pv.next {
			if final {
				fail(op, fmt.Sprintf("at or above the final high watermark %d", pv.next))
			}
			continue
		}
		checked++
		if got, ok := pv.vals[op.offset]; !ok {
			fail(op, "no record there")
		} else if got != op.id {
			fail(op, "that offset holds "+got.String())
		}
	}
	return checked, lost, first
}

// duplicates counts values stored at more than one offset.
func (lv *logView) duplicates() (dups int, records int) {
	seen := map[valueID]bool{}
	for _, pv := range lv.parts {
		for _, id := range pv.vals {
			records++
			if seen[id] {
				dups++
			}
			seen[id] = true
		}
	}
	return dups, records
}

// sameAs reports the first offset where two views of the topic differ
// (the incremental one and the final full read).
func (lv *logView) sameAs(o *logView) error {
	for p, pv := range lv.parts {
		ov := o.part(p)
		for off, id := range pv.vals {
			if off >= ov.next {
				continue
			}
			if got, ok := ov.vals[off]; !ok {
				return &counterexample{"two-values", fmt.Sprintf("%s/%d offset %d held %s, and is gone on the final read", lv.topic, p, off, id)}
			} else if got != id {
				return &counterexample{"two-values", fmt.Sprintf("%s/%d offset %d held %s, and %s on the final read", lv.topic, p, off, id, got)}
			}
		}
	}
	return nil
}

// verifyReplicas asks for the replica checksums of every partition of the
// topics: replicas must agree below the high watermark they share.
// Returns the partitions compared and the divergent ones.
func verifyReplicas(ctx context.Context, adm *client.Admin, topics []string) (compared int, divergent []string, err error) {
	for _, topic := range topics {
		d, err := adm.DescribeTopic(ctx, topic)
		if err != nil {
			return compared, divergent, err
		}
		for _, p := range d.Partitions {
			var resp client.PartitionVerification
			resp, err := adm.VerifyPartition(ctx, topic, p.Partition)
			if err != nil {
				return compared, divergent, fmt.Errorf("verify %s/%d: %w", topic, p.Partition, err)
			}
			for _, r := range resp.Replicas {
				if r.Error != "" {
					return compared, divergent, fmt.Errorf("verify %s/%d: replica on node%d not read: %s", topic, p.Partition, r.NodeID, r.Error)
				}
			}
			compared++
			if !resp.Agree {
				divergent = append(divergent, fmt.Sprintf("%s/%d from offset %d (compared [%d, %d), replicas %v)", topic, p.Partition, resp.FirstDifference, resp.FromOffset, resp.ToOffset, resp.Replicas))
			}
		}
	}
	return compared, divergent, nil
}

// topicsHealthy: every partition of the topics has a leader and all its
// replicas in sync.
func topicsHealthy(ctx context.Context, adm *client.Admin, topics []string) error {
	for _, topic := range topics {
		d, err := adm.DescribeTopic(ctx, topic)
		if err != nil {
			return fmt.Errorf("%s: %w", topic, err)
		}
		for _, p := range d.Partitions {
			if p.Leader == 0 {
				return fmt.Errorf("%s/%d has no leader", topic, p.Partition)
			}
			if len(p.InSyncReplicas) != len(p.Replicas) {
				return fmt.Errorf("%s/%d: in sync %v of replicas %v", topic, p.Partition, p.InSyncReplicas, p.Replicas)
			}
		}
	}
	return nil
}

// waitFor polls cond every 200 ms until it returns nil or timeout
// passes, and returns the last error.
func waitFor(ctx context.Context, timeout time.Duration, cond func(ctx context.Context) error) error {
	return waitForEach(ctx, timeout, 10*time.Second, cond)
}

// waitForEach is waitFor with each call of cond given up to attempt.
func waitForEach(ctx context.Context, timeout, attempt time.Duration, cond func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	// cut is the last error of an attempt the overall deadline did not cut
	// short: the one that says why, when the last attempt only says
	// "context deadline exceeded".
	var cut error
	for {
		cctx, ccancel := context.WithTimeout(ctx, attempt)
		err := cond(cctx)
		ccancel()
		if err == nil {
			return nil
		}
		var ce *counterexample
		if errors.As(err, &ce) {
			return err
		}
		if ctx.Err() == nil {
			cut = err
		}
		select {
		case <-ctx.Done():
			if cut != nil && cut != err {
				return fmt.Errorf("not within %s: %w (the last attempt, cut short: %v)", timeout, cut, err)
			}
			return fmt.Errorf("not within %s: %w", timeout, err)
		case <-tick.C:
		}
	}
}
