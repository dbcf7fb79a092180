package chaos

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/stratalog/strata/pkg/client"
)

// Values are globally unique: a 16-byte header naming the producer (4
// bytes), its sequence number (8) and the value's size (4), big endian,
// then a filler cut from a fixed pseudo-random block at a place computed
// from the header, so a reader checks every byte. Copying and comparing
// whole slices keeps this cheap under the race detector.
const (
	smallValue  = 1 << 10
	bigValue    = 16 << 10
	valueHeader = 16
)

var filler = func() []byte {
	b := make([]byte, 2*bigValue)
	r := rand.New(rand.NewPCG(11, 11))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}()

func fillerOf(id valueID, n int) []byte {
	o := int((uint64(id.seq)*7919 + uint64(id.prod)*104729) % uint64(len(filler)-n+1))
	return filler[o : o+n]
}

// valueID names one value: producer and sequence number.
type valueID struct {
	prod int32
	seq  int64
}

func (v valueID) String() string { return fmt.Sprintf("%d/%d", v.prod, v.seq) }

func makeValue(id valueID, size int) []byte {
	v := make([]byte, size)
	binary.BigEndian.PutUint32(v[0:], uint32(id.prod))
	binary.BigEndian.PutUint64(v[4:], uint64(id.seq))
	binary.BigEndian.PutUint32(v[12:], uint32(size))
	copy(v[valueHeader:], fillerOf(id, size-valueHeader))
	return v
}

// parseValue checks a value read back, header and filler.
func parseValue(v []byte) (valueID, error) {
	if len(v) < valueHeader {
		return valueID{}, fmt.Errorf("value of %d bytes, shorter than its header", len(v))
	}
	id := valueID{int32(binary.BigEndian.Uint32(v[0:])), int64(binary.BigEndian.Uint64(v[4:]))}
	if size := int(binary.BigEndian.Uint32(v[12:])); size != len(v) || size > bigValue {
		return id, fmt.Errorf("value %s: %d bytes, its header says %d", id, len(v), size)
	}
	if !bytes.Equal(v[valueHeader:], fillerOf(id, len(v)-valueHeader)) {
		return id, fmt.Errorf("value %s: bytes differ from what was produced", id)
	}
	return id, nil
}

// produceOp is one record handed to a producer and its outcome.
type produceOp struct {
	id               valueID
	size             int32
	topic            string
	partition        int32
	offset           int64 // -1 unless acknowledged
	invoke, complete time.Time
	err              error
}

// producers is the produce workload: each producer writes unique values
// to its topic at a paced rate, in bursts so that the client's default
// 1 MiB batches fill as under sustained load, every tenth value (chosen
// by the run's seed) 16 KiB, the rest 1 KiB; even-numbered producers key
// their records (64 keys each), odd ones do not. Acks are from a quorum
// (the client's default).
type producers struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ps     []*client.Producer
	mu     struct {
		sync.Mutex
		ops []produceOp
	}
}

// produceSpec is one producer: its topic and bytes per second.
type produceSpec struct {
	topic string
	rate  float64
}

func startProducers(ctx context.Context, cl *client.Client, h *History, seed uint64, specs []produceSpec) *producers {
	lctx, cancel := context.WithCancel(ctx)
	w := &producers{cancel: cancel}
	const burst = 128
	for i, spec := range specs {
		p := cl.NewProducer()
		w.ps = append(w.ps, p)
		rng := rand.New(rand.NewPCG(seed, uint64(1000+i)))
		w.wg.Go(func() {
			began := time.Now()
			var sent float64
			timer := time.NewTimer(time.Hour)
			defer timer.Stop()
			for seq := int64(0); lctx.Err() == nil; seq++ {
				if seq%burst == 0 {
					due := began.Add(time.Duration(sent / spec.rate * float64(time.Second)))
					if wait := time.Until(due); wait > time.Millisecond {
						timer.Reset(wait)
						select {
						case <-lctx.Done():
							return
						case <-timer.C:
						}
					}
				}
				size := smallValue
				if rng.IntN(10) == 0 {
					size = bigValue
				}
				sent += float64(size)
				id := valueID{int32(i), seq}
				r := &client.Record{Topic: spec.topic, Value: makeValue(id, size)}
				if i%2 == 0 {
					r.Key = fmt.Appendf(nil, "k%d-%d", i, rng.IntN(64))
				}
				invoke := time.Now()
				// ctx, not lctx: a record waiting for buffer space when
				// the load stops is still produced, so every error is
				// the cluster's.
				p.Produce(ctx, r, func(r *client.Record, err error) {
					op := produceOp{id: id, size: int32(size), topic: spec.topic, partition: r.Partition, offset: -1, invoke: invoke, complete: time.Now(), err: err}
					f := map[string]any{"client": fmt.Sprintf("p%d", i), "topic": spec.topic, "value": id.String(), "bytes": size}
					if err == nil {
						op.offset = r.Offset
						f["partition"], f["offset"] = r.Partition, r.Offset
					} else {
						f["err"] = err.Error()
					}
					h.Produce(invoke, op.complete, f, err == nil, size)
					w.mu.Lock()
					w.mu.ops = append(w.mu.ops, op)
					w.mu.Unlock()
				})
			}
		})
	}
	return w
}

// stop ends the load and delivers what is buffered (each producer's
// Close flushes, up to 60 s).
func (w *producers) stop(ctx context.Context) error {
	w.cancel()
	w.wg.Wait()
	var errs []error
	for i, p := range w.ps {
		cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		if err := p.Close(cctx); err != nil {
			errs = append(errs, fmt.Errorf("close producer %d: %w", i, err))
		}
		cancel()
	}
	return errors.Join(errs...)
}

// snapshot returns the operations completed so far.
func (w *producers) snapshot() []produceOp {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]produceOp(nil), w.mu.ops...)
}
