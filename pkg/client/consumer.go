package client

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/record"
)

// Consumer reads one topic's partitions from their leaders, each from its
// own position, without a group: positions live in the consumer only.
//
// Poll, Next, Seek, Pause and Resume are not safe for concurrent use with
// each other (one goroutine reads and steers); Positions, HighWatermarks,
// Lag, Paused and Close are safe from any goroutine.
type Consumer struct {
	c      *Client
	topic  string
	cfg    consumerConfig
	ctx    context.Context // cancelled by Close; aborts a Poll in progress
	cancel context.CancelFunc

	buf []*Record // records polled but not yet returned by Next

	mu struct {
		sync.Mutex
		started bool
		pos     map[int32]int64 // next offset to read
		hw      map[int32]int64 // high watermark from the last fetch
		paused  map[int32]bool  // not fetched until resumed
	}
}

// NewConsumer makes a consumer of topic. It checks the options but does
// not contact the cluster; the first Poll resolves partitions and start
// offsets (and reports an unknown topic).
func (c *Client) NewConsumer(topic string, opts ...ConsumerOpt) (*Consumer, error) {
	cfg := defaultConsumerConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.err(); err != nil {
		return nil, err
	}
	if topic == "" {
		return nil, errors.New("client: NewConsumer: empty topic")
	}
	cs := &Consumer{c: c, topic: topic, cfg: cfg}
	cs.ctx, cs.cancel = context.WithCancel(context.Background())
	cs.mu.pos = make(map[int32]int64)
	cs.mu.hw = make(map[int32]int64)
	cs.mu.paused = make(map[int32]bool)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		cs.cancel()
		return nil, ErrClosed
	}
	c.mu.consumers[cs] = struct{}{}
	return cs, nil
}

// Close stops the consumer; a Poll in progress returns ErrClosed. It
// holds no server-side state, so it always returns nil; the error is for
// symmetry with every other Close (and a future one that has to flush).
func (cs *Consumer) Close() error {
	cs.cancel()
	cs.c.mu.Lock()
	delete(cs.c.mu.consumers, cs)
	cs.c.mu.Unlock()
	return nil
}

// Seek moves partition's position to o (an exact offset, Earliest,
// Latest, a time, FromEnd), looking it up on the partition's leader where
// o needs it. Records of the partition already polled and not yet
// returned by Next are dropped. The next Poll reads from there.
func (cs *Consumer) Seek(ctx context.Context, partition int32, o Offset) error {
	if err := cs.start(ctx); err != nil {
		return err
	}
	cs.mu.Lock()
	_, ours := cs.mu.pos[partition]
	cs.mu.Unlock()
	if !ours {
		return fmt.Errorf("client: Seek: this consumer does not read %s/%d", cs.topic, partition)
	}
	to, err := cs.resolve(ctx, []int32{partition}, o)
	if err != nil {
		return fmt.Errorf("seek %s/%d to %v: %w", cs.topic, partition, o, err)
	}
	cs.dropBuffered(map[int32]bool{partition: true})
	cs.mu.Lock()
	cs.mu.pos[partition] = to[partition]
	cs.mu.Unlock()
	return nil
}

// Pause stops fetching partitions until Resume; their positions stay.
// Records of them already polled and not yet returned by Next are
// dropped, and their position moved back to the first of those, so
// nothing is skipped.
func (cs *Consumer) Pause(partitions ...int32) {
	set := make(map[int32]bool, len(partitions))
	for _, p := range partitions {
		set[p] = true
	}
	cs.dropBuffered(set)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, p := range partitions {
		cs.mu.paused[p] = true
	}
}

// Resume fetches paused partitions again, from their positions.
func (cs *Consumer) Resume(partitions ...int32) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, p := range partitions {
		delete(cs.mu.paused, p)
	}
}

// Paused lists the paused partitions, in no order.
func (cs *Consumer) Paused() []int32 {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return slices.Collect(maps.Keys(cs.mu.paused))
}

// dropBuffered removes the buffered records of parts and moves each such
// partition's position back to the first record dropped.
func (cs *Consumer) dropBuffered(parts map[int32]bool) {
	first := map[int32]int64{}
	kept := cs.buf[:0]
	for _, r := range cs.buf {
		if !parts[r.Partition] {
			kept = append(kept, r)
			continue
		}
		if _, ok := first[r.Partition]; !ok {
			first[r.Partition] = r.Offset
		}
	}
	clear(cs.buf[len(kept):])
	cs.buf = kept
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for p, o := range first {
		cs.mu.pos[p] = o
	}
}

// Positions returns the next offset to be read in each partition (empty
// before the first Poll).
func (cs *Consumer) Positions() map[int32]int64 {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return maps.Clone(cs.mu.pos)
}

// HighWatermarks returns each partition's high watermark as of its last
// fetch.
func (cs *Consumer) HighWatermarks() map[int32]int64 {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return maps.Clone(cs.mu.hw)
}

// Lag returns, per partition fetched at least once, how many records are
// between the position and the high watermark.
func (cs *Consumer) Lag() map[int32]int64 {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	out := make(map[int32]int64, len(cs.mu.hw))
	for p, hw := range cs.mu.hw {
		out[p] = max(0, hw-cs.mu.pos[p])
	}
	return out
}

// Next returns the next record, polling as needed. It blocks until a
// record arrives, ctx ends or the consumer is closed.
func (cs *Consumer) Next(ctx context.Context) (*Record, error) {
	for len(cs.buf) == 0 {
		recs, err := cs.Poll(ctx)
		if err != nil {
			return nil, err
		}
		cs.buf = recs
	}
	r := cs.buf[0]
	cs.buf[0] = nil
	cs.buf = cs.buf[1:]
	return r, nil
}

// Poll fetches the next records of every partition: it waits up to
// FetchMaxWait for at least one byte, so it may return no records and a
// nil error. Records are in offset order within a partition. Retriable
// errors (a leader moving, a broker restarting) are retried with fresh
// metadata within the client's RetryTimeout before they are returned.
func (cs *Consumer) Poll(ctx context.Context) ([]*Record, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(cs.ctx, cancel)
	defer stop()

	var out []*Record
	err := cs.c.retry(ctx, time.Now().Add(cs.c.cfg.retryTimeout), func(ctx context.Context, _ int) error {
		if err := cs.start(ctx); err != nil {
			return err
		}
		recs, err := cs.fetch(ctx)
		out = recs
		return err
	})
	if cs.ctx.Err() != nil {
		return nil, ErrClosed
	}
	return out, err
}

// start resolves the partitions and their start offsets, once.
func (cs *Consumer) start(ctx context.Context) error {
	cs.mu.Lock()
	started := cs.mu.started
	cs.mu.Unlock()
	if started {
		return nil
	}
	t, err := cs.c.meta.topic(ctx, cs.topic)
	if err != nil {
		return err
	}
	parts := cs.cfg.partitions
	if len(parts) == 0 {
		parts = t.partitions
	}
	for _, p := range parts {
		if _, ok := t.leaders[p]; !ok {
			return apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN_PARTITION, "topic %q has no partition %d (it has %d)", cs.topic, p, len(t.partitions))
		}
	}
	pos, err := cs.resolve(ctx, parts, cs.cfg.start)
	if err != nil {
		return err
	}
	cs.mu.Lock()
	cs.mu.pos, cs.mu.started = pos, true
	cs.mu.Unlock()
	return nil
}

// resolve turns an Offset into a position per partition.
func (cs *Consumer) resolve(ctx context.Context, parts []int32, o Offset) (map[int32]int64, error) {
	return cs.c.resolveOffset(ctx, cs.topic, parts, o)
}

// resolveOffset turns an Offset into a position for each of parts of
// topic, asking their leaders (ListOffsets) where it takes a lookup.
func (c *Client) resolveOffset(ctx context.Context, topic string, parts []int32, o Offset) (map[int32]int64, error) {
	pos := make(map[int32]int64, len(parts))
	lookup := func(spec v1.OffsetSpec, ts int64) (map[int32]int64, error) {
		res, err := c.listOffsets(ctx, topic, parts, spec, ts)
		if err != nil {
			return nil, err
		}
		m := make(map[int32]int64, len(res))
		for p, r := range res {
			m[p] = r.GetOffset()
		}
		return m, nil
	}
	switch o.kind {
	case offsetExact:
		for _, p := range parts {
			pos[p] = o.n
		}
		return pos, nil
	case offsetEarliest:
		return lookup(v1.OffsetSpec_OFFSET_SPEC_EARLIEST, 0)
	case offsetLatest:
		return lookup(v1.OffsetSpec_OFFSET_SPEC_LATEST, 0)
	case offsetTime:
		return lookup(v1.OffsetSpec_OFFSET_SPEC_TIMESTAMP, o.t.UnixMilli())
	case offsetFromEnd:
		first, err := lookup(v1.OffsetSpec_OFFSET_SPEC_EARLIEST, 0)
		if err != nil {
			return nil, err
		}
		end, err := lookup(v1.OffsetSpec_OFFSET_SPEC_LATEST, 0)
		if err != nil {
			return nil, err
		}
		for _, p := range parts {
			pos[p] = max(first[p], end[p]-o.n)
		}
		return pos, nil
	}
	return nil, fmt.Errorf("client: unknown offset %v", o)
}

// fetch sends one fetch per leader, concurrently, and decodes the
// replies on the calling goroutine (OnReset runs there). A partition with
// a retriable error is left for the next attempt; if no partition
// returned records, the error that matters most (see worse) is returned
// so the caller retries. NOT_LEADER replies that name the new leader
// reroute their partition at once (see leaderErr).
func (cs *Consumer) fetch(ctx context.Context) ([]*Record, error) {
	cs.mu.Lock()
	pos := maps.Clone(cs.mu.pos)
	for p := range cs.mu.paused {
		delete(pos, p)
	}
	cs.mu.Unlock()
	if len(pos) == 0 {
		// Everything paused: wait as an empty long poll would.
		t := time.NewTimer(cs.cfg.maxWait)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
			return nil, nil
		}
	}

	at := make(map[TopicPartition]int64, len(pos))
	for p, o := range pos {
		at[TopicPartition{cs.topic, p}] = o
	}
	replies, failure := cs.c.fetchLeaders(ctx, at, cs.cfg.maxWait, cs.cfg.fetchMaxBytes)
	return cs.c.collectFetched(ctx, replies, failure, func(ctx context.Context, pr *v1.FetchPartitionResult, via string) ([]*Record, error) {
		return cs.handle(ctx, pr, pos, via)
	})
}

// handle applies one partition's fetch result, from the broker at via:
// records, a reset, or an error.
func (cs *Consumer) handle(ctx context.Context, pr *v1.FetchPartitionResult, pos map[int32]int64, via string) ([]*Record, error) {
	p := pr.GetPartition()
	from, ok := pos[p]
	if !ok {
		return nil, nil // not ours
	}
	if err := apierr.FromProto(pr.GetError()); err != nil {
		if errors.Is(err, apierr.ErrOffsetOutOfRange) {
			return nil, cs.reset(ctx, p, from, err)
		}
		return nil, fmt.Errorf("fetch %s/%d at %d: %w", cs.topic, p, from, cs.c.leaderErr(cs.topic, []int32{p}, via, err))
	}
	recs, next, err := decodeFetched(cs.topic, p, pr.GetBatches(), from)
	cs.mu.Lock()
	cs.mu.hw[p] = pr.GetHighWatermark()
	if cs.mu.pos[p] == from {
		cs.mu.pos[p] = next
	}
	cs.mu.Unlock()
	if err != nil {
		return recs, fmt.Errorf("fetch %s/%d at %d: %w", cs.topic, p, from, err)
	}
	return recs, nil
}

// reset moves a partition whose position is out of range per the
// ResetPolicy and tells OnReset; with NoReset it returns oor, the
// broker's OFFSET_OUT_OF_RANGE error, saying the valid range.
func (cs *Consumer) reset(ctx context.Context, p int32, from int64, oor error) error {
	to, err := cs.c.resetPosition(ctx, &cs.cfg, TopicPartition{cs.topic, p}, from, oor)
	if err != nil {
		return err
	}
	cs.mu.Lock()
	cs.mu.pos[p] = to
	cs.mu.Unlock()
	if cs.cfg.onReset != nil {
		cs.cfg.onReset(cs.topic, p, from, to)
	}
	return nil
}

// resetPosition says where tp, whose position from is out of range (oor
// is the broker's OFFSET_OUT_OF_RANGE error), goes by cfg's ResetPolicy;
// with NoReset it returns oor, saying the valid range in words.
func (c *Client) resetPosition(ctx context.Context, cfg *consumerConfig, tp TopicPartition, from int64, oor error) (int64, error) {
	if cfg.reset.kind == offsetNone {
		var e *apierr.Error
		if !errors.As(oor, &e) {
			return 0, fmt.Errorf("fetch %s at %d: %w", tp, from, oor)
		}
		out := *e // the same code and range, in words
		out.Message = fmt.Sprintf("%s: offset %d is not stored; valid offsets are %d to %d (reset policy none)",
			tp, from, e.LogStartOffset, e.HighWatermark)
		return 0, &out
	}
	to, err := c.resolveOffset(ctx, tp.Topic, []int32{tp.Partition}, cfg.reset)
	if err != nil {
		return 0, fmt.Errorf("reset %s: %w", tp, err)
	}
	return to[tp.Partition], nil
}

// decodeFetched decodes the batches of one partition's fetch reply,
// keeping records at or above from, and returns the next position. The
// first batch may start below from (the broker returns whole batches);
// control batches are skipped but move the position past them.
func decodeFetched(topic string, partition int32, b []byte, from int64) ([]*Record, int64, error) {
	var out []*Record
	next := from
	for len(b) > 0 {
		batch, h, rest, err := record.Next(b)
		if err != nil {
			if len(out) > 0 || next > from {
				break // a cut-off last batch; the next fetch reads it whole
			}
			return nil, from, fmt.Errorf("%w: %v", apierr.ErrCorruptBatch, err)
		}
		b = rest
		if h.LastOffset() < next {
			continue
		}
		if !h.IsControl() {
			recs, err := record.Decode(batch, record.DecodeOptions{})
			if err != nil {
				return out, next, fmt.Errorf("batch at offset %d: %w", h.BaseOffset, err)
			}
			for _, r := range recs {
				if r.Offset < next {
					continue
				}
				out = append(out, &Record{
					Topic: topic, Partition: partition,
					Key: r.Key, Value: r.Value, Headers: r.Headers,
					Timestamp: r.Timestamp, Offset: r.Offset,
				})
			}
		}
		next = max(next, h.NextOffset())
	}
	return out, next, nil
}
