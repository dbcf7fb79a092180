package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/client"
)

// The register workload checks read-your-writes across clients and
// failovers: appenders write small unique values to a one-partition topic
// one at a time (ProduceSync, acks from a quorum) and readers read single
// offsets near the end, each operation with its invoke and complete time.
// The history must be linearizable for a log (porcupine):
//
//	append(v) -> o   the log's next offset is o
//	read(o)   -> v   the record at o, or absent
//
// Appends that failed may or may not have been stored: they are left out,
// and so are reads that returned a value no acknowledged append wrote
// (a failed append's, or a retried produce's first copy). What remains
// has a small sequential state: the highest offset an acknowledged append
// has taken effect at. An append must take an offset above it; a read of
// an offset at or below it must return the value acknowledged there (a
// log has no holes below its high watermark: "absent" there is a stale
// read); a read above it must not return an acknowledged value.

type regInput struct {
	append bool
	offset int64 // the read's offset
}

type regOutput struct {
	offset int64 // the append's offset
	// result of a read: readAcked (the value acknowledged at offset) or
	// readAbsent (nothing there yet).
	result int
}

const (
	readAcked = iota
	readAbsent
)

var logModel = porcupine.Model{
	Init: func() any { return int64(-1) },
	Step: func(state, input, output any) (bool, any) {
		top, in, out := state.(int64), input.(regInput), output.(regOutput)
		if in.append {
			return out.offset > top, out.offset
		}
		if out.result == readAcked {
			return in.offset <= top, top
		}
		return in.offset > top, top // absent
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(regInput), output.(regOutput)
		if in.append {
			return fmt.Sprintf("append -> %d", out.offset)
		}
		return fmt.Sprintf("read(%d) -> %s", in.offset, [...]string{"acked value", "absent"}[out.result])
	},
}

// regOp is one register operation as it happened.
type regOp struct {
	client           int
	append           bool
	value            string // written or read ("" when absent)
	offset           int64
	absent           bool
	invoke, complete time.Time
	err              error
}

type register struct {
	topic  string
	cancel context.CancelFunc
	wg     sync.WaitGroup
	top    atomic.Int64 // highest acknowledged offset, to aim reads
	mu     struct {
		sync.Mutex
		ops []regOp
	}
}

// startRegister runs appenders and readers, each one operation about
// every `every`.
func startRegister(ctx context.Context, cl *client.Client, h *History, seed uint64, topic string, appenders, readers int, every time.Duration) *register {
	rctx, cancel := context.WithCancel(ctx)
	r := &register{topic: topic, cancel: cancel}
	r.top.Store(-1)
	pace := func(rng *rand.Rand, timer *time.Timer) bool {
		timer.Reset(every/2 + time.Duration(rng.Int64N(int64(every))))
		select {
		case <-rctx.Done():
			return false
		case <-timer.C:
			return true
		}
	}
	for a := range appenders {
		r.wg.Go(func() {
			p := cl.NewProducer(client.Linger(0))
			defer p.Close(context.Background())
			rng := rand.New(rand.NewPCG(seed, uint64(2000+a)))
			timer := time.NewTimer(time.Hour)
			defer timer.Stop()
			for n := 0; pace(rng, timer); n++ {
				v := fmt.Sprintf("a%d-%d", a, n)
				op := regOp{client: a, append: true, value: v, invoke: time.Now()}
				actx, acancel := context.WithTimeout(ctx, 40*time.Second)
				res := p.ProduceSync(actx, &client.Record{Topic: topic, Value: []byte(v)})
				acancel()
				op.complete, op.err = time.Now(), res.FirstErr()
				if op.err == nil {
					op.offset = res[0].Record.Offset
					for top := r.top.Load(); op.offset > top && !r.top.CompareAndSwap(top, op.offset); top = r.top.Load() {
					}
				}
				r.add(h, op)
			}
		})
	}
	for i := range readers {
		id := appenders + i
		r.wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(3000+i)))
			timer := time.NewTimer(time.Hour)
			defer timer.Stop()
			for pace(rng, timer) {
				o := max(r.top.Load()-int64(rng.IntN(4))+int64(rng.IntN(3)), 0)
				op := regOp{client: id, offset: o, invoke: time.Now()}
				op.value, op.absent, op.err = readOne(ctx, cl, topic, o)
				op.complete = time.Now()
				r.add(h, op)
			}
		})
	}
	return r
}

// readOne reads the record at offset o of partition 0 through its leader.
func readOne(ctx context.Context, cl *client.Client, topic string, o int64) (value string, absent bool, err error) {
	cs, err := cl.NewConsumer(topic, client.Partitions(0), client.StartAt(client.AtOffset(o)), client.ResetPolicy(client.NoReset()), client.FetchMaxWait(50*time.Millisecond))
	if err != nil {
		return "", false, err
	}
	defer cs.Close()
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	recs, err := cs.Poll(pctx)
	if errors.Is(err, apierr.ErrOffsetOutOfRange) {
		return "", true, nil
	}
	if err != nil {
		return "", false, err
	}
	if len(recs) == 0 {
		return "", true, nil
	}
	if recs[0].Offset != o {
		return fmt.Sprintf("<no record at %d; next %d>", o, recs[0].Offset), false, nil
	}
	return string(recs[0].Value), false, nil
}

func (r *register) add(h *History, op regOp) {
	f := map[string]any{"client": fmt.Sprintf("r%d", op.client), "topic": r.topic, "end": op.complete.UnixNano(), "offset": op.offset, "ok": op.err == nil}
	kind := "read"
	if op.append {
		kind = "append"
	}
	if op.value != "" {
		f["value"] = op.value
	}
	if op.absent {
		f["absent"] = true
	}
	if op.err != nil {
		f["err"] = op.err.Error()
	}
	h.Log(op.invoke, kind, f)
	r.mu.Lock()
	r.mu.ops = append(r.mu.ops, op)
	r.mu.Unlock()
}

func (r *register) stop() {
	r.cancel()
	r.wg.Wait()
}

// regVerdict is what the register check found.
type regVerdict struct {
	appends, reads, failed int
	result                 porcupine.CheckResult
}

// check builds the porcupine history and checks it, within timeout.
// A read of an acknowledged offset that returned another value, or two
// acknowledged appends at one offset, fail before porcupine runs.
func (r *register) check(timeout time.Duration, htmlPath string) (regVerdict, error) {
	r.mu.Lock()
	ops := append([]regOp(nil), r.mu.ops...)
	r.mu.Unlock()
	var v regVerdict
	acked := map[int64]string{}
	for _, op := range ops {
		if !op.append || op.err != nil {
			continue
		}
		if prev, ok := acked[op.offset]; ok {
			return v, &counterexample{"two-values", fmt.Sprintf("register: %q and %q both acknowledged at offset %d", prev, op.value, op.offset)}
		}
		acked[op.offset] = op.value
	}
	var hist []porcupine.Operation
	for _, op := range ops {
		if op.err != nil {
			v.failed++
			continue
		}
		pop := porcupine.Operation{ClientId: op.client, Call: op.invoke.UnixNano(), Return: op.complete.UnixNano()}
		if op.append {
			v.appends++
			pop.Input, pop.Output = regInput{append: true}, regOutput{offset: op.offset}
			hist = append(hist, pop)
			continue
		}
		v.reads++
		want, isAcked := acked[op.offset]
		out := regOutput{result: readAbsent}
		switch {
		case op.absent:
		case isAcked && op.value == want:
			out.result = readAcked
		case isAcked:
			return v, &counterexample{"two-values", fmt.Sprintf("register: offset %d read as %q at %s, but %q was acknowledged there", op.offset, op.value, op.complete.Format("15:04:05.000"), want)}
		default:
			// A value where no acknowledged append is: a failed append's,
			// or the first copy of a retried one. No constraint.
			continue
		}
		pop.Input, pop.Output = regInput{offset: op.offset}, out
		hist = append(hist, pop)
	}
	res, info := porcupine.CheckOperationsVerbose(logModel, hist, timeout)
	v.result = res
	if res == porcupine.Illegal {
		detail := "history is not linearizable"
		if err := porcupine.VisualizePath(logModel, info, htmlPath); err == nil {
			detail += " (porcupine's picture: " + htmlPath + ")"
		}
		return v, &counterexample{"linearizable", detail + explain(ops)}
	}
	return v, nil
}

// explain finds a direct case for a non-linearizable register history: an
// operation that began after an append at offset o was acknowledged, yet
// either appended below o or read an offset at or below o as absent.
func explain(ops []regOp) string {
	var done []regOp // acknowledged appends by completion
	for _, op := range ops {
		if op.append && op.err == nil {
			done = append(done, op)
		}
	}
	slices.SortFunc(done, func(a, b regOp) int { return a.complete.Compare(b.complete) })
	best := make([]int, len(done)) // best[i]: index of the highest offset among done[:i+1]
	for i := range done {
		best[i] = i
		if i > 0 && done[best[i-1]].offset > done[i].offset {
			best[i] = best[i-1]
		}
	}
	for _, op := range ops {
		if op.err != nil || !(op.append || op.absent) {
			continue
		}
		i, _ := slices.BinarySearchFunc(done, op.invoke, func(a regOp, t time.Time) int { return a.complete.Compare(t) })
		if i == 0 {
			continue
		}
		prior := done[best[i-1]]
		if op.append && op.offset <= prior.offset && op.value != prior.value {
			return fmt.Sprintf(": %q was appended at %d (invoked %s) after %q had been acknowledged at %d (%s)",
				op.value, op.offset, op.invoke.Format("15:04:05.000"), prior.value, prior.offset, prior.complete.Format("15:04:05.000"))
		}
		if op.absent && op.offset <= prior.offset {
			return fmt.Sprintf(": a read of offset %d invoked at %s found nothing, but %q had been acknowledged at offset %d at %s (a stale read)",
				op.offset, op.invoke.Format("15:04:05.000"), prior.value, prior.offset, prior.complete.Format("15:04:05.000"))
		}
	}
	return ""
}
