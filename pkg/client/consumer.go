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

// Consumer reads the partitions of one or more topics from their leaders,
// each from its own position, without a group: positions live in the
// consumer only. Everything that names a partition names its topic too
// (TopicPartition, as the GroupConsumer does), so one consumer of several
// topics is steered like one of a single topic.
//
// Poll, Next, Seek, Pause and Resume are not safe for concurrent use with
// each other (one goroutine reads and steers); Positions, HighWatermarks,
// Lag, Paused and Close are safe from any goroutine.
type Consumer struct {
	c      *Client
	topics []string // sorted, distinct
	cfg    consumerConfig
	ctx    context.Context // cancelled by Close; aborts a Poll in progress
	cancel context.CancelFunc

	buf []*Record // records polled but not yet returned by Next

	mu struct {
		sync.Mutex
		started bool
		pos     map[TopicPartition]int64 // next offset to read
		hw      map[TopicPartition]int64 // high watermark from the last fetch
		paused  map[TopicPartition]bool  // not fetched until resumed
	}
}

// NewConsumer makes a consumer of topic. It checks the options but does
// not contact the cluster; the first Poll resolves partitions and start
// offsets (and reports an unknown topic).
func (c *Client) NewConsumer(topic string, opts ...ConsumerOpt) (*Consumer, error) {
	if topic == "" {
		return nil, errors.New("client: NewConsumer: empty topic")
	}
	return c.NewConsumerTopics([]string{topic}, opts...)
}

// NewConsumerTopics makes a consumer of several topics, as NewConsumer
// does of one: every partition of each (or those TopicPartitions names),
// each from StartAt. Partitions names partitions of one topic, so with
// more than one topic it is refused: use TopicPartitions.
//
// Why a second constructor rather than a Topics option: NewConsumer's
// topic argument stays, so every existing call compiles and reads as
// before, and an option would leave "which topic wins" to explain when
// both are given. (Topics is already the GroupConsumer's subscription.)
func (c *Client) NewConsumerTopics(topics []string, opts ...ConsumerOpt) (*Consumer, error) {
	cfg := defaultConsumerConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.err(); err != nil {
		return nil, err
	}
	if len(topics) == 0 {
		return nil, errors.New("client: NewConsumerTopics: no topics; name at least one")
	}
	for i, t := range topics {
		if t == "" {
			return nil, errors.New("client: NewConsumerTopics: empty topic name")
		}
		if slices.Contains(topics[:i], t) {
			return nil, fmt.Errorf("client: NewConsumerTopics: topic %q given twice", t)
		}
	}
	if err := cfg.bindPartitions(topics); err != nil {
		return nil, err
	}
	cs := &Consumer{c: c, topics: slices.Sorted(slices.Values(topics)), cfg: cfg}
	cs.ctx, cs.cancel = context.WithCancel(context.Background())
	cs.mu.pos = make(map[TopicPartition]int64)
	cs.mu.hw = make(map[TopicPartition]int64)
	cs.mu.paused = make(map[TopicPartition]bool)
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

// Topics returns the topics the consumer reads, sorted.
func (cs *Consumer) Topics() []string { return slices.Clone(cs.topics) }

// Seek moves topic's partition's position to o (an exact offset,
// Earliest, Latest, a time, FromEnd), looking it up on the partition's
// leader where o needs it. Records of the partition already polled and
// not yet returned by Next are dropped. The next Poll reads from there.
func (cs *Consumer) Seek(ctx context.Context, topic string, partition int32, o Offset) error {
	if err := cs.start(ctx); err != nil {
		return err
	}
	tp := TopicPartition{topic, partition}
	cs.mu.Lock()
	_, ours := cs.mu.pos[tp]
	cs.mu.Unlock()
	if !ours {
		return fmt.Errorf("client: Seek: this consumer does not read %s (it reads %v)", tp, cs.Assignment())
	}
	to, err := cs.c.resolveOffset(ctx, topic, []int32{partition}, o)
	if err != nil {
		return fmt.Errorf("seek %s to %v: %w", tp, o, err)
	}
	cs.dropBuffered(map[TopicPartition]bool{tp: true})
	cs.mu.Lock()
	cs.mu.pos[tp] = to[partition]
	cs.mu.Unlock()
	return nil
}

// Assignment returns the partitions the consumer reads, sorted (empty
// before the first Poll or Seek resolves them).
func (cs *Consumer) Assignment() []TopicPartition {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return sortedTPs(cs.mu.pos)
}

// Pause stops fetching parts until Resume; their positions stay. Records
// of them already polled and not yet returned by Next are dropped, and
// their position moved back to the first of those, so nothing is
// skipped. The other partitions, of the same topic or others, go on.
func (cs *Consumer) Pause(parts ...TopicPartition) {
	set := make(map[TopicPartition]bool, len(parts))
	for _, tp := range parts {
		set[tp] = true
	}
	cs.dropBuffered(set)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, tp := range parts {
		cs.mu.paused[tp] = true
	}
}

// Resume fetches paused partitions again, from their positions.
func (cs *Consumer) Resume(parts ...TopicPartition) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, tp := range parts {
		delete(cs.mu.paused, tp)
	}
}

// Paused lists the paused partitions, sorted.
func (cs *Consumer) Paused() []TopicPartition {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return sortedTPs(cs.mu.paused)
}

// dropBuffered removes the buffered records of parts and moves each such
// partition's position back to the first record dropped.
func (cs *Consumer) dropBuffered(parts map[TopicPartition]bool) {
	first := map[TopicPartition]int64{}
	kept := cs.buf[:0]
	for _, r := range cs.buf {
		tp := TopicPartition{r.Topic, r.Partition}
		if !parts[tp] {
			kept = append(kept, r)
			continue
		}
		if _, ok := first[tp]; !ok {
			first[tp] = r.Offset
		}
	}
	clear(cs.buf[len(kept):])
	cs.buf = kept
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for tp, o := range first {
		cs.mu.pos[tp] = o
	}
}

// Positions returns the next offset to be read in each partition (empty
// before the first Poll).
func (cs *Consumer) Positions() map[TopicPartition]int64 {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return maps.Clone(cs.mu.pos)
}

// HighWatermarks returns each partition's high watermark as of its last
// fetch.
func (cs *Consumer) HighWatermarks() map[TopicPartition]int64 {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return maps.Clone(cs.mu.hw)
}

// Lag returns, per partition fetched at least once, how many records are
// between the position and the high watermark.
func (cs *Consumer) Lag() map[TopicPartition]int64 {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	out := make(map[TopicPartition]int64, len(cs.mu.hw))
	for tp, hw := range cs.mu.hw {
		out[tp] = max(0, hw-cs.mu.pos[tp])
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

// start resolves the partitions of every topic and their start offsets,
// once: all topics or none, so a later attempt does not mix positions
// resolved at different times.
func (cs *Consumer) start(ctx context.Context) error {
	cs.mu.Lock()
	started := cs.mu.started
	cs.mu.Unlock()
	if started {
		return nil
	}
	pos := make(map[TopicPartition]int64)
	for _, topic := range cs.topics {
		t, err := cs.c.meta.topic(ctx, topic)
		if err != nil {
			return err
		}
		parts := cs.cfg.topicParts[topic]
		if len(parts) == 0 {
			parts = t.partitions
		}
		for _, p := range parts {
			if _, ok := t.leaders[p]; !ok {
				return apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN_PARTITION, "topic %q has no partition %d (it has %d)", topic, p, len(t.partitions))
			}
		}
		at, err := cs.c.resolveOffset(ctx, topic, parts, cs.cfg.start)
		if err != nil {
			return err
		}
		for p, o := range at {
			pos[TopicPartition{topic, p}] = o
		}
	}
	cs.mu.Lock()
	cs.mu.pos, cs.mu.started = pos, true
	cs.mu.Unlock()
	return nil
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
	for tp := range cs.mu.paused {
		delete(pos, tp)
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

	replies, failure := cs.c.fetchLeaders(ctx, pos, cs.cfg.maxWait, cs.cfg.fetchMaxBytes)
	return cs.c.collectFetched(ctx, replies, failure, func(ctx context.Context, pr *v1.FetchPartitionResult, via string) ([]*Record, error) {
		return cs.handle(ctx, pr, pos, via)
	})
}

// handle applies one partition's fetch result, from the broker at via:
// records, a reset, or an error.
func (cs *Consumer) handle(ctx context.Context, pr *v1.FetchPartitionResult, pos map[TopicPartition]int64, via string) ([]*Record, error) {
	tp := TopicPartition{pr.GetTopic(), pr.GetPartition()}
	from, ok := pos[tp]
	if !ok {
		return nil, nil // not ours
	}
	if err := apierr.FromProto(pr.GetError()); err != nil {
		if errors.Is(err, apierr.ErrOffsetOutOfRange) {
			return nil, cs.reset(ctx, tp, from, err)
		}
		return nil, fmt.Errorf("fetch %s at %d: %w", tp, from, cs.c.leaderErr(tp.Topic, []int32{tp.Partition}, via, err))
	}
	recs, next, err := decodeFetched(tp.Topic, tp.Partition, pr.GetBatches(), from)
	cs.mu.Lock()
	cs.mu.hw[tp] = pr.GetHighWatermark()
	if cs.mu.pos[tp] == from {
		cs.mu.pos[tp] = next
	}
	cs.mu.Unlock()
	if err != nil {
		return recs, fmt.Errorf("fetch %s at %d: %w", tp, from, err)
	}
	return recs, nil
}

// reset moves a partition whose position is out of range per the
// ResetPolicy and tells OnReset; with NoReset it returns oor, the
// broker's OFFSET_OUT_OF_RANGE error, saying the valid range.
func (cs *Consumer) reset(ctx context.Context, tp TopicPartition, from int64, oor error) error {
	to, err := cs.c.resetPosition(ctx, &cs.cfg, tp, from, oor)
	if err != nil {
		return err
	}
	cs.mu.Lock()
	cs.mu.pos[tp] = to
	cs.mu.Unlock()
	if cs.cfg.onReset != nil {
		cs.cfg.onReset(tp.Topic, tp.Partition, from, to)
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
