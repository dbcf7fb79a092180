package broker

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"maps"
	"slices"
	"sync"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/metadata"
)

// VerifyPartition compares a partition's replicas batch by batch, from
// the log start every replica has up to the leader's high watermark (or
// the end of the shortest replica, if that is lower: a follower behind),
// and names the first offset where they differ. Any broker answers.
//
// It never reads a whole replica into one message: each replica returns a
// CRC-32C per run of offsets (LogChecksums), the runs are compared, and
// the first run that differs is asked again in runs verifyRuns times
// shorter, until a run is one offset long (one batch):
//
//	[from ─────────────────────────────── to)    64 runs per replica
//	        [run 17 differs ──────────)           64 shorter runs
//	              [run 3 ─)                       ... down to one batch
//
// Errors: UNKNOWN_TOPIC, UNKNOWN_PARTITION. A replica that cannot be read
// (its broker is down, or its log damaged) is reported with its error and
// left out of the comparison; agree is then about the others.
func (b *Broker) VerifyPartition(ctx context.Context, req *v1.VerifyPartitionRequest) (*v1.VerifyPartitionResponse, error) {
	resp, err := b.verifyPartition(ctx, req)
	return resp, apierr.ToStatus(err)
}

// verifyRuns is how many runs each round splits a range into.
const verifyRuns = 64

func (b *Broker) verifyPartition(ctx context.Context, req *v1.VerifyPartitionRequest) (*v1.VerifyPartitionResponse, error) {
	t, a, err := b.assignment(req.Topic, req.Partition)
	if err != nil {
		return nil, err
	}
	group := t.GroupName(req.Partition)
	states := b.groupStates(ctx, a.Replicas, group)
	resp := &v1.VerifyPartitionResponse{Topic: req.Topic, Partition: req.Partition, FirstDifference: -1}
	// Compare what is committed (below the highest high watermark: the
	// leader's; idle followers learn it late) and present on every
	// replica.
	var live []metadata.NodeID
	from, to, committed := int64(0), int64(-1), int64(0)
	for _, id := range a.Replicas {
		st := states[id]
		rc := &v1.ReplicaChecksum{NodeId: id}
		resp.Replicas = append(resp.Replicas, rc)
		if st == nil {
			rc.Error = fmt.Sprintf("broker %d did not answer", id)
			continue
		}
		rc.LogStartOffset, rc.HighWatermark = st.LogStartOffset, st.HighWatermark
		live = append(live, id)
		from = max(from, st.LogStartOffset)
		if to < 0 || st.LogEndOffset < to {
			to = st.LogEndOffset
		}
		committed = max(committed, st.HighWatermark)
	}
	to = min(to, committed)
	to = max(to, from)
	resp.FromOffset, resp.ToOffset = from, to
	if len(live) == 0 {
		return resp, nil
	}

	first, agree := narrow(from, to, len(a.Replicas), func(lo, hi, step int64) map[metadata.NodeID][]*v1.OffsetRange {
		sums := b.checksumsOf(ctx, group, live, lo, hi, step, resp)
		if lo == from && hi == to {
			totals(resp, sums)
		}
		return sums
	})
	resp.FirstDifference, resp.Agree = first, agree
	return resp, nil
}

// narrow compares the replicas' checksums of [from, to) in verifyRuns
// runs, then the first run that differs in verifyRuns shorter runs, and so
// on down to one offset (a batch), through sums (which leaves out the
// replicas it could not read). It returns the base offset of the first
// batch that differs (-1 if none), and whether all of the want replicas
// were read and agree.
func narrow(from, to int64, want int, sums func(lo, hi, step int64) map[metadata.NodeID][]*v1.OffsetRange) (int64, bool) {
	lo, hi := from, to
	for {
		step := max((hi-lo+verifyRuns-1)/verifyRuns, 1)
		got := sums(lo, hi, step)
		ids := slices.Sorted(maps.Keys(got))
		if len(ids) < 2 {
			return -1, len(ids) == want
		}
		run, differ := firstDifference(got, ids)
		switch {
		case !differ && lo == from && hi == to:
			return -1, len(ids) == want
		case !differ:
			// The whole range differed but none of its runs does now: a
			// replica changed meanwhile (compaction). Name the run.
			return lo, false
		case step == 1:
			return run.FirstBatch, false
		}
		lo, hi = run.FromOffset, min(run.FromOffset+step, hi)
	}
}

// checksumsOf asks each of ids for its checksums; replicas that fail are
// marked in resp and left out of the result.
func (b *Broker) checksumsOf(ctx context.Context, group string, ids []metadata.NodeID, lo, hi, step int64, resp *v1.VerifyPartitionResponse) map[metadata.NodeID][]*v1.OffsetRange {
	out := map[metadata.NodeID][]*v1.OffsetRange{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	req := &v1.LogChecksumsRequest{Group: group, FromOffset: lo, ToOffset: hi, Step: step}
	for _, id := range ids {
		wg.Go(func() {
			var r *v1.LogChecksumsResponse
			var err error
			if id == b.cfg.NodeID {
				r, err = b.LogChecksums(ctx, req)
			} else if ic, ierr := b.internalClient(id); ierr != nil {
				err = ierr
			} else {
				r, err = ic.LogChecksums(ctx, req)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				for _, rc := range resp.Replicas {
					if rc.NodeId == id && rc.Error == "" {
						rc.Error = apierr.FromStatus(err).Error()
					}
				}
				return
			}
			out[id] = r.Ranges
		})
	}
	wg.Wait()
	return out
}

// totals sets each replica's checksum of the whole range (a CRC-32C of
// its runs' CRCs and sizes, in order), and the batches and bytes compared
// (the first replica's).
func totals(resp *v1.VerifyPartitionResponse, sums map[metadata.NodeID][]*v1.OffsetRange) {
	for _, rc := range resp.Replicas {
		rs, ok := sums[rc.NodeId]
		if !ok {
			continue
		}
		var crc uint32
		var batches, bytes int64
		for _, r := range rs {
			crc = crc32.Update(crc, castagnoli, binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint32(nil, r.Crc), uint64(r.Bytes)))
			batches += r.Batches
			bytes += r.Bytes
		}
		rc.Crc = crc
		if resp.Batches == 0 {
			resp.Batches, resp.Bytes = batches, bytes
		}
	}
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// firstDifference is the first run, by offset, where the replicas' sums
// differ; a run that some replicas have and others lack differs. The run
// returned names the lowest first batch any replica has in it.
func firstDifference(sums map[metadata.NodeID][]*v1.OffsetRange, ids []metadata.NodeID) (*v1.OffsetRange, bool) {
	byRun := map[int64]map[metadata.NodeID]*v1.OffsetRange{}
	for _, id := range ids {
		for _, r := range sums[id] {
			if byRun[r.FromOffset] == nil {
				byRun[r.FromOffset] = map[metadata.NodeID]*v1.OffsetRange{}
			}
			byRun[r.FromOffset][id] = r
		}
	}
	for _, from := range slices.Sorted(maps.Keys(byRun)) {
		runs := byRun[from]
		var first *v1.OffsetRange
		differ := len(runs) != len(ids)
		for _, id := range ids {
			r, ok := runs[id]
			if !ok {
				continue
			}
			if first == nil {
				first = &v1.OffsetRange{FromOffset: r.FromOffset, FirstBatch: r.FirstBatch, Batches: r.Batches, Bytes: r.Bytes, Crc: r.Crc}
				continue
			}
			if r.FirstBatch != first.FirstBatch || r.Batches != first.Batches || r.Bytes != first.Bytes || r.Crc != first.Crc {
				differ = true
			}
			first.FirstBatch = min(first.FirstBatch, r.FirstBatch)
		}
		if differ {
			return first, true
		}
	}
	return nil, false
}
