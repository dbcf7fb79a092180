package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratalog/strata/pkg/client"
	"github.com/stratalog/strata/pkg/record"
	"github.com/stratalog/strata/pkg/segment"
)

// Real-size load for the tests of issue 10: records of 1 KiB (and some of
// 16 KiB) through the client's default producer (1 MiB batches, acks from
// a quorum), each one's acknowledgement written down, and everything read
// back at the end.

const (
	smallRecord = 1 << 10
	bigRecord   = 16 << 10
	// loadHeader is the part of a load value that names it: the producer
	// (4 bytes), its sequence number (8) and the value's size (4), big
	// endian. The rest is a filler computed from these, so a reader can
	// check every byte.
	loadHeader = 16
)

// loadFiller is the pseudo-random block the load values' fillers are cut
// from: copying and comparing whole slices keeps producing and checking
// cheap under the race detector, which instruments every byte written in
// a loop.
var loadFiller = func() []byte {
	b := make([]byte, 2*bigRecord)
	r := rand.New(rand.NewPCG(10, 10))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}()

// fillerOf is the filler of producer prod's record seq, n bytes long.
func fillerOf(prod int, seq int64, n int) []byte {
	o := int((uint64(seq)*7919 + uint64(prod)*104729) % uint64(len(loadFiller)-n+1))
	return loadFiller[o : o+n]
}

// loadValue is producer prod's record seq, size bytes long (>= loadHeader).
func loadValue(prod int, seq int64, size int) []byte {
	v := make([]byte, size)
	binary.BigEndian.PutUint32(v[0:], uint32(prod))
	binary.BigEndian.PutUint64(v[4:], uint64(seq))
	binary.BigEndian.PutUint32(v[12:], uint32(size))
	copy(v[loadHeader:], fillerOf(prod, seq, size-loadHeader))
	return v
}

// parseLoadValue checks a value read back: its header and every filler
// byte.
func parseLoadValue(v []byte) (prod int, seq int64, err error) {
	if len(v) < loadHeader {
		return 0, 0, fmt.Errorf("value of %d bytes is shorter than the %d-byte load header", len(v), loadHeader)
	}
	prod = int(binary.BigEndian.Uint32(v[0:]))
	seq = int64(binary.BigEndian.Uint64(v[4:]))
	if size := int(binary.BigEndian.Uint32(v[12:])); size != len(v) || size > bigRecord {
		return prod, seq, fmt.Errorf("producer %d record %d: %d bytes, its header says %d", prod, seq, len(v), size)
	}
	if !bytes.Equal(v[loadHeader:], fillerOf(prod, seq, len(v)-loadHeader)) {
		return prod, seq, fmt.Errorf("producer %d record %d: value bytes differ from what was produced", prod, seq)
	}
	return prod, seq, nil
}

// ackEntry is one acknowledged record: who produced it, where the broker
// said it stored it, and when the callback ran.
type ackEntry struct {
	prod      int32
	size      int32
	seq       int64
	partition int32
	offset    int64
	at        time.Time
}

// ackBook collects every produce callback of a test.
type ackBook struct {
	mu struct {
		sync.Mutex
		acks      []ackEntry
		bytes     int64 // value bytes acknowledged
		failed    int
		firstFail error
	}
}

func (b *ackBook) record(prod int, seq int64, size int, r *client.Record, err error) {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		if b.mu.failed == 0 {
			b.mu.firstFail = fmt.Errorf("producer %d record %d: %w", prod, seq, err)
		}
		b.mu.failed++
		return
	}
	b.mu.acks = append(b.mu.acks, ackEntry{prod: int32(prod), size: int32(size), seq: seq, partition: r.Partition, offset: r.Offset, at: now})
	b.mu.bytes += int64(size)
}

// snapshot returns a copy of the acknowledgements so far, the value bytes
// they carried, and the failures.
func (b *ackBook) snapshot() (acks []ackEntry, bytes int64, failed int, firstFail error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.mu.acks), b.mu.bytes, b.mu.failed, b.mu.firstFail
}

func (b *ackBook) count() (acked int, bytes int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.mu.acks), b.mu.bytes
}

// loadSpec is what runLoad produces.
type loadSpec struct {
	topic     string
	producers int
	// bigEvery makes every bigEvery-th record of a producer 16 KiB (0:
	// all are 1 KiB).
	bigEvery int64
	// maxBytes stops the load once this many value bytes were handed to
	// the producers (0: no limit).
	maxBytes int64
	// perSecond paces each producer to this many records a second (0:
	// as fast as the producer takes them; it blocks when its buffer of
	// MaxBufferedRecords is full).
	perSecond float64
	// burst is how many records a paced producer sends back to back
	// between waits (default 1). A burst of a batch's worth (1024 1 KiB
	// records) fills the producer's 1 MiB batches as sustained load does,
	// where a steady trickle would go out in small lingered batches.
	burst int64
}

// load is a running runLoad.
type load struct {
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	producers []*client.Producer
	sent      atomic.Int64 // value bytes handed to Produce
	started   time.Time
	stopOnce  sync.Once
	stopErr   error
}

// runLoad starts spec.producers producers on cl with the client's
// defaults (1 MiB batches, acks from a quorum, 30 s delivery timeout), each
// on a goroutine of its own, writing every callback into book. Stop it
// with stop.
//
// Produce gets ctx, not the load's own context that stop cancels: a
// record waiting for a buffer slot when the load stops is still produced,
// so every callback error is the cluster's, never the test's.
func runLoad(ctx context.Context, cl *client.Client, book *ackBook, spec loadSpec) *load {
	loadCtx, cancel := context.WithCancel(ctx)
	l := &load{cancel: cancel, started: time.Now()}
	for g := range spec.producers {
		p := cl.NewProducer()
		l.producers = append(l.producers, p)
		l.wg.Go(func() {
			var timer *time.Timer
			defer func() {
				if timer != nil {
					timer.Stop()
				}
			}()
			for seq := int64(0); loadCtx.Err() == nil; seq++ {
				size := smallRecord
				if spec.bigEvery > 0 && seq%spec.bigEvery == spec.bigEvery-1 {
					size = bigRecord
				}
				if n := l.sent.Add(int64(size)); spec.maxBytes > 0 && n > spec.maxBytes {
					return
				}
				if spec.perSecond > 0 && seq%max(spec.burst, 1) == 0 {
					due := l.started.Add(time.Duration(float64(seq) / spec.perSecond * float64(time.Second)))
					if wait := time.Until(due); wait > time.Millisecond {
						if timer == nil {
							timer = time.NewTimer(wait)
						} else {
							timer.Reset(wait)
						}
						select {
						case <-loadCtx.Done():
							return
						case <-timer.C:
						}
					}
				}
				r := &client.Record{Topic: spec.topic, Value: loadValue(g, seq, size)}
				p.Produce(ctx, r, func(r *client.Record, err error) { book.record(g, seq, size, r, err) })
			}
		})
	}
	return l
}

// stop ends the load: no new records, then every buffered one delivered
// (each producer's Close flushes, up to 60 s).
func (l *load) stop(ctx context.Context) error {
	l.stopOnce.Do(func() {
		l.cancel()
		l.wg.Wait()
		var errs []error
		for i, p := range l.producers {
			cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			if err := p.Close(cctx); err != nil {
				errs = append(errs, fmt.Errorf("close producer %d: %w", i, err))
			}
			cancel()
		}
		l.stopErr = errors.Join(errs...)
	})
	return l.stopErr
}

// done waits (bounded by ctx) until the load's producers stop by
// themselves, at spec.maxBytes.
func (l *load) done(ctx context.Context) error {
	ch := make(chan struct{})
	go func() { l.wg.Wait(); close(ch) }()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("load did not reach its size: %w", ctx.Err())
	}
}

// readCheck is what verifyAcked found.
type readCheck struct {
	read       int   // records read below the high watermarks
	readBytes  int64 // their value bytes
	duplicates int   // records read that were an earlier record's copy (a retried produce)
	unacked    int   // records read whose produce was never acknowledged (failed or indeterminate)
	took       time.Duration
}

// verifyAcked reads the partitions from their leaders (through cl) up to
// hw and checks that every acknowledged record is there, at the offset its
// acknowledgement named, byte for byte. Delivery is at least once (a
// retried produce can be stored twice), so copies elsewhere are counted,
// not failed.
func verifyAcked(t *testing.T, ctx context.Context, cl *client.Client, topic string, hw map[int32]int64, acks []ackEntry) readCheck {
	t.Helper()
	began := time.Now()
	type at struct {
		p   int32
		off int64
	}
	type id struct {
		prod int32
		seq  int64
	}
	want := make(map[at]int, len(acks))
	for i, a := range acks {
		if a.offset >= hw[a.partition] {
			t.Errorf("producer %d record %d acknowledged at %d/%d, at or above the high watermark %d", a.prod, a.seq, a.partition, a.offset, hw[a.partition])
		}
		want[at{a.partition, a.offset}] = i
	}
	found := make([]bool, len(acks))
	seen := make(map[id]bool, len(acks))
	var rc readCheck
	for p, end := range hw {
		cs, err := cl.NewConsumer(topic, client.Partitions(p), client.StartAt(client.Earliest()), client.FetchMaxWait(100*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		for {
			pos, started := cs.Positions()[client.TopicPartition{Topic: topic, Partition: p}]
			if started && pos >= end {
				break
			}
			recs, err := cs.Poll(rctx)
			if err != nil {
				cancel()
				cs.Close()
				t.Fatalf("read %s/%d at %d (high watermark %d): %v", topic, p, pos, end, err)
			}
			for _, r := range recs {
				if r.Offset >= end {
					continue
				}
				rc.read++
				rc.readBytes += int64(len(r.Value))
				prod, seq, err := parseLoadValue(r.Value)
				if err != nil {
					t.Errorf("%s/%d offset %d: %v", topic, p, r.Offset, err)
					continue
				}
				k := id{int32(prod), seq}
				if seen[k] {
					rc.duplicates++
				}
				seen[k] = true
				i, ok := want[at{p, r.Offset}]
				if !ok {
					continue
				}
				if a := acks[i]; a.prod != int32(prod) || a.seq != seq {
					t.Errorf("%s/%d offset %d holds producer %d record %d, but producer %d record %d was acknowledged there", topic, p, r.Offset, prod, seq, a.prod, a.seq)
					continue
				}
				found[i] = true
			}
		}
		cancel()
		cs.Close()
	}
	acked := make(map[id]bool, len(acks))
	var missing []string
	nMissing := 0
	for i, a := range acks {
		acked[id{a.prod, a.seq}] = true
		if found[i] {
			continue
		}
		nMissing++
		if len(missing) < 10 {
			missing = append(missing, fmt.Sprintf("producer %d record %d at %d/%d (acked %s)", a.prod, a.seq, a.partition, a.offset, a.at.Format("15:04:05.000")))
		}
	}
	if nMissing > 0 {
		t.Errorf("%d of %d acknowledged records were not read back where their acknowledgement said, e.g. %s", nMissing, len(acks), strings.Join(missing, "; "))
	}
	for k := range seen {
		if !acked[k] {
			rc.unacked++
		}
	}
	rc.took = time.Since(began)
	return rc
}

// envInt reads a positive integer from the environment, def when unset.
func envInt(t *testing.T, name string, def, lo, hi int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < lo || v > hi {
		t.Fatalf("%s=%q: want an integer in %d..%d", name, s, lo, hi)
	}
	return v
}

// envDurations reads a comma-separated list of durations, def when unset.
func envDurations(t *testing.T, name string, def []time.Duration, hi time.Duration) []time.Duration {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	var out []time.Duration
	for _, f := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil || d < 0 || d > hi {
			t.Fatalf("%s=%q: want durations up to %s, comma-separated", name, s, hi)
		}
		out = append(out, d)
	}
	return out
}

// mb is bytes in 10^6 units, the way the bench command reports them.
func mb(n int64) float64 { return float64(n) / 1e6 }

// hashReplicaLog opens a stopped broker's log of one partition and hashes
// its batches below upTo, reading 4 MiB at a time (readReplicaLog holds
// and decodes the whole log, too much at hundreds of MB). It returns the
// SHA-256 and the log's end.
func hashReplicaLog(dataDir, topic string, p int32, upTo int64) (sum [sha256.Size]byte, next int64, err error) {
	dirs, err := filepath.Glob(filepath.Join(dataDir, "topics", topic+"-*", fmt.Sprint(p)))
	if err != nil {
		return sum, 0, err
	}
	if len(dirs) != 1 {
		return sum, 0, fmt.Errorf("%s: want one log dir for %s/%d, found %v", dataDir, topic, p, dirs)
	}
	l, err := segment.Open(dirs[0], segment.DefaultOptions())
	if err != nil {
		return sum, 0, err
	}
	defer l.Close()
	if rep := l.RecoveryReport(); rep != nil {
		return sum, 0, fmt.Errorf("%s: recovery after a clean stop cut the log: %v", dirs[0], rep)
	}
	next = l.NextOffset()
	end := min(upTo, next)
	h := sha256.New()
	for off := l.StartOffset(); off < end; {
		b, err := l.Read(off, end, 4<<20)
		if err != nil {
			return sum, next, fmt.Errorf("%s: read at %d: %w", dirs[0], off, err)
		}
		if len(b) == 0 {
			return sum, next, fmt.Errorf("%s: read at %d (end %d) returned nothing", dirs[0], off, end)
		}
		for len(b) > 0 {
			batch, hd, rest, err := record.Next(b)
			if err != nil {
				return sum, next, fmt.Errorf("%s: batch near %d: %w", dirs[0], off, err)
			}
			if hd.BaseOffset < end {
				h.Write(batch)
			}
			b = rest
			off = max(off, hd.NextOffset())
		}
	}
	copy(sum[:], h.Sum(nil))
	return sum, next, nil
}
