package integration

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/client"
	"github.com/stratalog/strata/pkg/record"
	"google.golang.org/grpc"
)

// produceOp is one record's produce as the test saw it: the call
// (invoke), the callback (complete) and what the callback said.
type produceOp struct {
	proc, seq        int
	value            string
	invoke, complete time.Time
	done             bool
	err              error // nil = acknowledged at partition/offset
	partition        int32
	offset           int64
}

// attempts counts the Produce RPCs that carried one value, by outcome.
// NOT_LEADER is definite (the broker appended nothing: replication
// documents NotLeaderError as "nothing was appended"); every other
// failure, including a transport error or a deadline, is indeterminate:
// the batch may have been stored.
type attempts struct {
	ok, definite, indeterminate int
}

// span is one successful Produce RPC for a partition.
type span struct {
	start, end time.Time
}

// history records every produce of the test and every Produce RPC the
// clients sent (through a gRPC interceptor, which is how the test tells a
// definite failure from an indeterminate one: the client's callback
// reports only the last error).
type history struct {
	mu struct {
		sync.Mutex
		ops      [][]*produceOp // by producer, in seq order
		attempts map[string]*attempts
		success  map[int32][]span
	}
}

func newHistory(producers int) *history {
	h := &history{}
	h.mu.ops = make([][]*produceOp, producers)
	h.mu.attempts = map[string]*attempts{}
	h.mu.success = map[int32][]span{}
	return h
}

func (h *history) invoke(proc, seq int, value string) *produceOp {
	o := &produceOp{proc: proc, seq: seq, value: value, invoke: time.Now()}
	h.mu.Lock()
	h.mu.ops[proc] = append(h.mu.ops[proc], o)
	h.mu.Unlock()
	return o
}

func (h *history) complete(o *produceOp, r *client.Record, err error) {
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	o.complete, o.done, o.err = now, true, err
	if err == nil {
		o.partition, o.offset = r.Partition, r.Offset
	}
}

// intercept is a gRPC unary client interceptor recording each Produce
// RPC's outcome per value it carried.
func (h *history) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	preq, ok := req.(*v1.ProduceRequest)
	if !ok {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	start := time.Now()
	err := invoker(ctx, method, req, reply, cc, opts...)
	end := time.Now()
	results := map[int32]*v1.ProducePartitionResult{}
	if resp, ok := reply.(*v1.ProduceResponse); ok && err == nil {
		for _, r := range resp.GetPartitions() {
			results[r.GetPartition()] = r
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, pp := range preq.GetPartitions() {
		res, have := results[pp.GetPartition()]
		code := res.GetError().GetCode()
		if have && code == v1.ErrorCode_ERROR_CODE_NONE {
			h.mu.success[pp.GetPartition()] = append(h.mu.success[pp.GetPartition()], span{start, end})
		}
		for _, v := range batchValues(pp.GetBatches()) {
			a := h.mu.attempts[v]
			if a == nil {
				a = &attempts{}
				h.mu.attempts[v] = a
			}
			switch {
			case !have:
				a.indeterminate++
			case code == v1.ErrorCode_ERROR_CODE_NONE:
				a.ok++
			case code == v1.ErrorCode_ERROR_CODE_NOT_LEADER:
				a.definite++
			default:
				a.indeterminate++
			}
		}
	}
	return err
}

// batchValues returns the values of the records in b (concatenated
// batches); undecodable bytes yield what was decoded before them.
func batchValues(b []byte) []string {
	var out []string
	for len(b) > 0 {
		batch, _, rest, err := record.Next(b)
		if err != nil {
			return out
		}
		b = rest
		recs, err := record.Decode(batch, record.DecodeOptions{})
		if err != nil {
			return out
		}
		for _, r := range recs {
			out = append(out, string(r.Value))
		}
	}
	return out
}

// resumedAfter returns the end of the first successful Produce RPC for
// partition p that started after t.
func (h *history) resumedAfter(p int32, t time.Time) (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var best time.Time
	for _, s := range h.mu.success[p] {
		if s.start.After(t) && (best.IsZero() || s.end.Before(best)) {
			best = s.end
		}
	}
	return best, !best.IsZero()
}

// logPos is a position in a partition.
type logPos struct {
	partition int32
	offset    int64
}

// check checks the history against the records read back, per
// partition in offset order (the committed log up to the high
// watermark), and logs a summary.
func (h *history) check(t *testing.T, logs map[int32][]diskRecord) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()

	byValue := map[string]*produceOp{}
	var all []*produceOp
	for _, ops := range h.mu.ops {
		for _, o := range ops {
			byValue[o.value] = o
			all = append(all, o)
		}
	}
	at := map[logPos]string{}
	where := map[string][]logPos{}
	for p, recs := range logs {
		for _, r := range recs {
			v := string(r.value)
			at[logPos{p, r.offset}] = v
			where[v] = append(where[v], logPos{p, r.offset})
			if _, ok := byValue[v]; !ok {
				t.Errorf("%d/%d holds value %q, which no producer sent", p, r.offset, v)
			}
		}
	}

	var nOK, nDefinite, nUnknown, nUnknownPresent, nPending, nDupValues, nDupCopies, nRetried int
	fails := 0
	failf := func(format string, args ...any) {
		fails++
		if fails <= 30 {
			t.Errorf(format, args...)
		}
	}
	for _, o := range all {
		a := h.mu.attempts[o.value]
		if a == nil {
			a = &attempts{}
		}
		if a.indeterminate > 0 || a.definite > 0 {
			nRetried++
		}
		copies := where[o.value]
		switch {
		case !o.done:
			nPending++
			failf("%s: no callback after the producer was closed", o.value)
		case o.err == nil:
			nOK++
			if got, ok := at[logPos{o.partition, o.offset}]; !ok {
				failf("acknowledged %s at %d/%d is missing (found at %v); attempts %+v", o.value, o.partition, o.offset, copies, *a)
			} else if got != o.value {
				failf("acknowledged %s at %d/%d, but that offset holds %s (%s found at %v); attempts %+v", o.value, o.partition, o.offset, got, o.value, copies, *a)
			}
		case a.ok == 0 && a.indeterminate == 0:
			// Definitely failed: no RPC that carried it may have stored it.
			nDefinite++
			if len(copies) > 0 {
				failf("%s failed definitely (%v; attempts %+v) but is stored at %v", o.value, o.err, *a, copies)
			}
		default:
			nUnknown++
			if len(copies) > 0 {
				nUnknownPresent++
			}
		}
		if len(copies) > 1 {
			nDupValues++
			nDupCopies += len(copies) - 1
			// Each copy needs an RPC that may have stored it: the
			// acknowledged one plus the indeterminate ones.
			if allowed := a.ok + a.indeterminate; len(copies) > allowed {
				failf("%s is stored %d times (%v) but only %d Produce RPCs may have stored it (attempts %+v, callback error %v)", o.value, len(copies), copies, allowed, *a, o.err)
			}
		}
	}
	if fails > 30 {
		t.Errorf("... and %d more history violations", fails-30)
	}

	// A producer's acknowledged offsets rise per partition in the order it
	// produced (one batch in flight per partition, callbacks in order).
	for proc, ops := range h.mu.ops {
		last := map[int32]*produceOp{}
		for _, o := range ops {
			if !o.done || o.err != nil {
				continue
			}
			if prev := last[o.partition]; prev != nil && o.offset <= prev.offset {
				t.Errorf("producer %d: %s acknowledged at %d/%d, after %s at %d/%d", proc, o.value, o.partition, o.offset, prev.value, prev.partition, prev.offset)
			}
			last[o.partition] = o
		}
	}

	// Real time: if A's ack came before B was produced, A's offset is
	// below B's (in the same partition).
	byPart := map[int32][]*produceOp{}
	for _, o := range all {
		if o.done && o.err == nil {
			byPart[o.partition] = append(byPart[o.partition], o)
		}
	}
	for p, ops := range byPart {
		sort.Slice(ops, func(i, j int) bool { return ops[i].offset < ops[j].offset })
		var maxInvoke *produceOp // the latest-invoked op at a lower offset
		for _, o := range ops {
			if maxInvoke != nil && o.complete.Before(maxInvoke.invoke) {
				t.Errorf("partition %d: %s was acknowledged (offset %d) before %s was produced, yet %s got the lower offset %d", p, o.value, o.offset, maxInvoke.value, maxInvoke.value, maxInvoke.offset)
				break
			}
			if maxInvoke == nil || o.invoke.After(maxInvoke.invoke) {
				maxInvoke = o
			}
		}
	}

	total := 0
	for _, recs := range logs {
		total += len(recs)
	}
	t.Logf("history: %d produced: %d acknowledged, %d failed definitely, %d unknown (%d of them stored), %d pending; %d retried at least once; log holds %d records; %d values stored more than once (%d extra copies)",
		len(all), nOK, nDefinite, nUnknown, nUnknownPresent, nPending, nRetried, total, nDupValues, nDupCopies)
}

// durationStats formats min/median/max of ds.
func durationStats(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return fmt.Sprintf("n=%d min=%s median=%s max=%s", len(s), s[0].Round(time.Millisecond), s[len(s)/2].Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond))
}
