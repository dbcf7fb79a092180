package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/producers"
	"github.com/stratalog/strata/pkg/record"
)

// Producer batches records per partition and sends each batch to the
// partition's leader.
//
// How a record travels: Produce takes a buffer slot (MaxBufferedRecords
// bounds them, so a slow cluster pushes back on the caller), picks a
// partition from metadata and appends the record to that partition's
// pending list. A partition has at most one sender goroutine, started
// when its batch is ready — full (BatchMaxBytes, or less: the topic's
// max.message.bytes, see producer_split.go), lingered (Linger), or
// forced by ProduceSync or Flush — and gone once the list is empty or not
// ready. The sender encodes one batch, sends it, retries retriable errors
// until the delivery timeout (straight to the new leader when a NOT_LEADER
// reply names it, with fresh metadata otherwise), then calls the
// callbacks in order and frees the slots. A batch the topic's limit
// refuses is split in two and each half sent in turn (producer_split.go).
//
// One sender per partition (MaxInFlight 1) keeps per-partition order: a
// batch is never sent before the previous one is acknowledged.
//
// Delivery is exactly once per partition with the idempotent producer (the
// default, see Idempotent and producer_id.go): each batch carries the
// producer's id and the sequence number of its first record, the same on
// every retry, and the partition stores it once. With Idempotent(false) a
// produce whose reply is lost is retried and may be stored twice.
type Producer struct {
	c      *Client
	cfg    producerConfig
	err    error // invalid options; every record fails with it
	slots  chan struct{}
	ctx    context.Context // cancelled by abort: in-flight sends stop
	cancel context.CancelFunc
	wg     sync.WaitGroup // sender goroutines
	pid    producerID     // the idempotent producer's id (producer_id.go)

	mu struct {
		sync.Mutex
		parts    map[topicPartition]*partBuf
		unacked  int           // records accepted, callback not yet run
		drained  chan struct{} // closed when unacked reaches 0
		flushing int           // Flush calls in progress
		aborted  bool
	}
}

type topicPartition struct {
	topic     string
	partition int32
}

func (tp topicPartition) String() string { return fmt.Sprintf("%s/%d", tp.topic, tp.partition) }

type pending struct {
	r        *Record
	cb       func(*Record, error)
	ctx      context.Context // Produce's: cancelled before the record is sent, the record fails
	enqueued time.Time
}

// partBuf is one partition's pending records. Guarded by Producer.mu.
type partBuf struct {
	tp         topicPartition
	recs       []pending
	bytes      int
	sending    bool        // a sender goroutine owns the partition
	force      bool        // send without waiting for the linger
	lingerDone bool        // the oldest pending record has waited Linger
	timer      *time.Timer // the linger timer, when armed
	// maxMessageBytes is the topic's max.message.bytes as metadata last
	// said (0: unknown); batches are sized under it (producer_split.go).
	maxMessageBytes int
	// seq is the sequence number of the partition's next record under the
	// producer id of generation gen (producer_id.go). Only the sender
	// goroutine that owns the partition uses them.
	seq int32
	gen int
}

// ProduceResult is one record's outcome in ProduceSync.
type ProduceResult struct {
	Record *Record
	Err    error
}

// ProduceResults are ProduceSync's outcomes, in the order given.
type ProduceResults []ProduceResult

// FirstErr returns the first record's error, or nil if all succeeded.
func (rs ProduceResults) FirstErr() error {
	for _, r := range rs {
		if r.Err != nil {
			return r.Err
		}
	}
	return nil
}

// NewProducer makes a producer. Invalid options do not fail here: every
// record produced fails with the option error, so the mistake shows at
// the first callback or FirstErr.
func (c *Client) NewProducer(opts ...ProducerOpt) *Producer {
	cfg := defaultProducerConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.partitioner == nil {
		cfg.partitioner = KeyHashPartitioner()
	}
	if bs, ok := cfg.partitioner.(batchSizer); ok {
		bs.setBatchBytes(cfg.batchMaxBytes)
	}
	p := &Producer{c: c, cfg: cfg, err: cfg.err(), slots: make(chan struct{}, cfg.maxBuffered)}
	p.pid.id = noProducer
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.mu.parts = make(map[topicPartition]*partBuf)
	c.mu.Lock()
	if c.mu.closed {
		p.mu.aborted = true
		p.cancel()
	} else {
		c.mu.producers[p] = struct{}{}
	}
	c.mu.Unlock()
	return p
}

// ErrMaxBuffered is TryProduce's outcome when MaxBufferedRecords records
// are buffered already.
var ErrMaxBuffered = errors.New("client: the producer's buffer is full (MaxBufferedRecords records wait for acknowledgement); retry after some are acknowledged, or use Produce, which waits")

// Produce buffers r for sending and calls cb exactly once with r (its
// Partition and Offset set on success) and the outcome. It blocks only to
// load metadata for a new topic or while MaxBufferedRecords are
// buffered; ctx bounds that wait. If ctx ends before the record is sent,
// the record fails with ctx's error; once sent, the delivery is bounded by
// DeliveryTimeout, not ctx (the broker may already have stored it).
//
// Callbacks run on the producer's goroutines, in offset order within a
// partition. They must not block for long, and must not call Flush, Close
// or ProduceSync on the same producer (those wait for callbacks), nor
// Produce while the buffer may be full (it would wait for the callback's
// own goroutine). cb may be nil.
func (p *Producer) Produce(ctx context.Context, r *Record, cb func(*Record, error)) {
	if cb == nil {
		cb = func(*Record, error) {}
	}
	p.produce(ctx, r, cb, nil, false)
}

// TryProduce is Produce without the wait for buffer space: with
// MaxBufferedRecords records buffered, cb gets ErrMaxBuffered at once
// (franz-go's TryProduce). It may still block to load a new topic's
// metadata.
func (p *Producer) TryProduce(ctx context.Context, r *Record, cb func(*Record, error)) {
	if cb == nil {
		cb = func(*Record, error) {}
	}
	p.produce(ctx, r, cb, nil, true)
}

// BufferedRecords is how many records were produced and are not yet
// acknowledged or failed (their callbacks have not run).
func (p *Producer) BufferedRecords() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.unacked
}

// produce is Produce; touched, when not nil, collects the partitions used
// so ProduceSync can force them out, and is forced before blocking; try
// fails at once instead of waiting for buffer space.
func (p *Producer) produce(ctx context.Context, r *Record, cb func(*Record, error), touched map[topicPartition]bool, try bool) {
	if p.err != nil {
		cb(r, p.err)
		return
	}
	if err := ctx.Err(); err != nil {
		cb(r, err)
		return
	}
	select {
	case p.slots <- struct{}{}:
	default:
		if try {
			cb(r, ErrMaxBuffered)
			return
		}
		if touched != nil {
			p.kick(touched)
		}
		select {
		case p.slots <- struct{}{}:
		case <-ctx.Done():
			cb(r, ctx.Err())
			return
		case <-p.ctx.Done():
			cb(r, ErrClosed)
			return
		}
	}
	partition, limit, err := p.partition(ctx, r)
	if err != nil {
		<-p.slots
		cb(r, err)
		return
	}
	r.Partition = partition
	tp := topicPartition{r.Topic, partition}
	if touched != nil {
		touched[tp] = true
	}

	p.mu.Lock()
	if p.mu.aborted {
		p.mu.Unlock()
		<-p.slots
		cb(r, ErrClosed)
		return
	}
	p.mu.unacked++
	pb := p.mu.parts[tp]
	if pb == nil {
		pb = &partBuf{tp: tp}
		p.mu.parts[tp] = pb
	}
	if limit > 0 {
		pb.maxMessageBytes = limit
	}
	pb.recs = append(pb.recs, pending{r: r, cb: cb, ctx: ctx, enqueued: time.Now()})
	pb.bytes += r.size()
	p.maybeSendLocked(pb)
	p.mu.Unlock()
}

// partition picks r's partition, and says the topic's max.message.bytes
// (0 if unknown).
func (p *Producer) partition(ctx context.Context, r *Record) (part int32, maxMessageBytes int, err error) {
	if r.Topic == "" {
		return 0, 0, apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_TOPIC, "record has no topic")
	}
	t, err := p.c.meta.topic(ctx, r.Topic)
	if err != nil {
		return 0, 0, err
	}
	part = p.cfg.partitioner.Partition(r, len(t.partitions))
	if _, ok := t.leaders[part]; !ok {
		return 0, 0, apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN_PARTITION, "topic %q has no partition %d (it has %d)", r.Topic, part, len(t.partitions))
	}
	return part, t.maxMessageBytes, nil
}

// ProduceSync produces recs and waits for all of them, sending at once
// rather than after the linger. The results are in the order of recs.
// It returns when every record is acknowledged or failed, which the
// delivery timeout bounds; ctx bounds only the wait for buffer space.
func (p *Producer) ProduceSync(ctx context.Context, recs ...*Record) ProduceResults {
	results := make(ProduceResults, len(recs))
	var wg sync.WaitGroup
	wg.Add(len(recs))
	touched := make(map[topicPartition]bool)
	for i, r := range recs {
		p.produce(ctx, r, func(r *Record, err error) {
			results[i] = ProduceResult{Record: r, Err: err}
			wg.Done()
		}, touched, false)
	}
	p.kick(touched)
	wg.Wait()
	return results
}

// kick sends the pending records of the given partitions without waiting
// for the linger.
func (p *Producer) kick(tps map[topicPartition]bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for tp := range tps {
		if pb := p.mu.parts[tp]; pb != nil && len(pb.recs) > 0 {
			pb.force = true
			p.maybeSendLocked(pb)
		}
	}
}

// Flush sends every buffered record at once and waits until all of them
// are acknowledged or failed, or ctx ends. Records produced during Flush
// are sent at once too and waited for.
func (p *Producer) Flush(ctx context.Context) error {
	p.mu.Lock()
	p.mu.flushing++
	for _, pb := range p.mu.parts {
		p.maybeSendLocked(pb)
	}
	var done chan struct{}
	if p.mu.unacked > 0 {
		if p.mu.drained == nil {
			p.mu.drained = make(chan struct{})
		}
		done = p.mu.drained
	}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.mu.flushing--
		p.mu.Unlock()
	}()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("flush: %w", ctx.Err())
	}
}

// Close flushes (bounded by ctx), then stops the producer: records not
// delivered by then fail with ErrClosed. Close waits for every goroutine
// of the producer to exit.
func (p *Producer) Close(ctx context.Context) error {
	err := p.Flush(ctx)
	p.abort()
	p.c.mu.Lock()
	delete(p.c.mu.producers, p)
	p.c.mu.Unlock()
	return err
}

// abort fails everything buffered, stops in-flight sends and waits for
// the senders.
func (p *Producer) abort() {
	p.mu.Lock()
	if p.mu.aborted {
		p.mu.Unlock()
		p.wg.Wait()
		return
	}
	p.mu.aborted = true
	var orphans []pending
	for _, pb := range p.mu.parts {
		if pb.timer != nil {
			pb.timer.Stop()
			pb.timer = nil
		}
		if !pb.sending {
			orphans = append(orphans, pb.recs...)
			pb.recs, pb.bytes = nil, 0
		}
	}
	p.mu.Unlock()
	p.cancel()
	p.finish(orphans, ErrClosed)
	p.wg.Wait()
}

// ready reports whether pb's batch should go now. Caller holds p.mu.
func (p *Producer) readyLocked(pb *partBuf) bool {
	return len(pb.recs) > 0 && (pb.force || pb.lingerDone || p.mu.flushing > 0 ||
		pb.bytes >= p.batchBytesLocked(pb) || p.cfg.linger == 0 ||
		time.Since(pb.recs[0].enqueued) >= p.cfg.linger)
}

// maybeSendLocked starts pb's sender if its batch is ready, or arms the
// linger timer. Caller holds p.mu.
func (p *Producer) maybeSendLocked(pb *partBuf) {
	if pb.sending || len(pb.recs) == 0 || p.mu.aborted {
		return
	}
	if !p.readyLocked(pb) {
		if pb.timer == nil {
			// The linger counts from the oldest pending record, which may
			// have arrived while the previous batch was in flight.
			wait := p.cfg.linger - time.Since(pb.recs[0].enqueued)
			pb.timer = time.AfterFunc(wait, func() {
				p.mu.Lock()
				defer p.mu.Unlock()
				pb.timer = nil
				pb.lingerDone = true
				p.maybeSendLocked(pb)
			})
		}
		return
	}
	if pb.timer != nil {
		pb.timer.Stop()
		pb.timer = nil
	}
	pb.sending = true
	p.wg.Add(1)
	go p.sendLoop(pb)
}

// sendLoop owns pb while pb.sending: it sends ready batches one at a time
// until none is ready.
func (p *Producer) sendLoop(pb *partBuf) {
	defer p.wg.Done()
	for {
		p.mu.Lock()
		if p.mu.aborted {
			recs := pb.recs
			pb.recs, pb.bytes, pb.sending = nil, 0, false
			p.mu.Unlock()
			p.finish(recs, ErrClosed)
			return
		}
		batch, cancelled := takeBatch(pb, p.batchBytesLocked(pb))
		p.mu.Unlock()

		for _, pr := range cancelled {
			p.finish([]pending{pr}, pr.ctx.Err())
		}
		if len(batch) > 0 {
			p.sendSplitting(pb, batch)
		}

		p.mu.Lock()
		if !p.readyLocked(pb) || p.mu.aborted && len(pb.recs) == 0 {
			pb.sending = false
			p.maybeSendLocked(pb) // arms the linger for what is left
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
	}
}

// takeBatch removes the next batch from pb: records in order up to
// maxBytes, at least one, and, apart, the records among them whose
// Produce context ended (they fail unsent). Caller holds the producer's
// lock.
func takeBatch(pb *partBuf, maxBytes int) (batch, cancelled []pending) {
	n, bytes := 0, 0
	for n < len(pb.recs) {
		s := pb.recs[n].r.size()
		if n > 0 && bytes+s > maxBytes {
			break
		}
		bytes += s
		n++
	}
	batch = pb.recs[:n:n]
	pb.recs = pb.recs[n:]
	pb.bytes -= bytes
	pb.lingerDone = false
	if len(pb.recs) == 0 {
		pb.recs, pb.bytes, pb.force = nil, 0, false
	}
	for i, pr := range batch {
		if pr.ctx.Err() != nil {
			// Rare: copy the live ones out rather than filter in place,
			// which would shift records under a caller's slice.
			live := append([]pending(nil), batch[:i]...)
			for _, pr := range batch[i:] {
				if pr.ctx.Err() != nil {
					cancelled = append(cancelled, pr)
				} else {
					live = append(live, pr)
				}
			}
			return live, cancelled
		}
	}
	return batch, nil
}

// finish runs the callbacks of recs and frees their buffer slots.
func (p *Producer) finish(recs []pending, err error) {
	if len(recs) == 0 {
		return
	}
	for _, pr := range recs {
		pr.cb(pr.r, err)
		<-p.slots
	}
	p.mu.Lock()
	p.mu.unacked -= len(recs)
	if p.mu.unacked == 0 && p.mu.drained != nil {
		close(p.mu.drained)
		p.mu.drained = nil
	}
	p.mu.Unlock()
}

// send encodes and sends one batch, retrying retriable errors until the
// oldest record's delivery timeout; on success it sets the offsets. A batch
// of several records that is over the topic's limit, by its encoded size
// or by the partition's refusal, is a *tooLargeError: nothing of it was
// stored and its sequence numbers are still free, so the caller may split
// it (producer_split.go).
func (p *Producer) send(pb *partBuf, batch []pending) error {
	tp := pb.tp
	now := time.Now().Truncate(time.Millisecond)
	recs := make([]record.Record, len(batch))
	for i, pr := range batch {
		recs[i] = pr.r.toBatchRecord()
		if recs[i].Timestamp.IsZero() {
			recs[i].Timestamp = now
		}
	}
	deadline := batch[0].enqueued.Add(p.cfg.deliveryTimeout)
	ctx, cancel := context.WithDeadline(p.ctx, deadline)
	defer cancel()
	// The producer id and this batch's sequence, fixed before the first
	// attempt: every retry sends the same bytes, which the partition
	// recognises.
	id, epoch, gen, err := p.current(ctx)
	if err != nil {
		return fmt.Errorf("get a producer id for %s: %w", tp, err)
	}
	seq := int32(-1)
	if id != noProducer {
		if pb.gen != gen {
			pb.seq, pb.gen = 0, gen
		}
		seq = pb.seq
	}
	b, err := record.Encode(recs, record.EncodeOptions{Compression: p.cfg.compression, ProducerID: id, ProducerEpoch: epoch, BaseSequence: seq})
	if err != nil {
		return fmt.Errorf("encode batch for %s: %w", tp, err)
	}
	if err := p.overLimit(pb, len(batch), len(b)); err != nil {
		return err // not sent: the sequence is still free
	}
	maybeStored, err := p.deliver(ctx, tp, b, deadline, batch, recs)
	if err != nil && !maybeStored && errors.Is(err, apierr.ErrRecordTooLarge) {
		// Refused by its size before anything of it was stored: the
		// partition did not take its sequence numbers, so nothing to
		// forget; the caller splits it, or it fails alone.
		return &tooLargeError{err: err}
	}
	if id != noProducer {
		if err == nil {
			pb.seq = producers.AddSeq(seq, int32(len(batch)))
		} else {
			p.forget(gen) // the partition's sequence is unknown now
		}
	}
	if err != nil && maybeStored && errors.Is(err, apierr.ErrRecordTooLarge) {
		return fmt.Errorf("%w (not split and resent: an earlier attempt of this batch got no answer and may have been stored before max.message.bytes was lowered)", err)
	}
	return err
}

// deliver sends the encoded batch b until it is acknowledged or deadline,
// and sets the records' offsets. maybeStored says whether an attempt that
// failed may have been stored all the same (no answer, or an error other
// than NOT_LEADER or RECORD_TOO_LARGE, which refuse a batch before it is
// stored).
func (p *Producer) deliver(ctx context.Context, tp topicPartition, b []byte, deadline time.Time, batch []pending, recs []record.Record) (maybeStored bool, err error) {
	var base int64
	err = p.c.retry(ctx, deadline, func(ctx context.Context, _ int) error {
		cl, addr, err := p.c.meta.leader(ctx, tp.topic, tp.partition)
		if err != nil {
			return err
		}
		parts := []int32{tp.partition}
		req := &v1.ProduceRequest{
			Topic:      tp.topic,
			Partitions: []*v1.ProducePartition{{Partition: tp.partition, Batches: b}},
			Acks:       p.cfg.acks.proto(),
			TimeoutMs:  int32(min(time.Until(deadline), attemptTimeout-5*time.Second).Milliseconds()),
		}
		resp, err := cl.Produce(ctx, req)
		if err != nil {
			maybeStored = true
			return p.c.leaderErr(tp.topic, parts, addr, apierr.FromStatus(err))
		}
		for _, pr := range resp.GetPartitions() {
			if pr.GetPartition() == tp.partition {
				base = pr.GetBaseOffset()
				perr := apierr.FromProto(pr.GetError())
				if perr != nil && !errors.Is(perr, apierr.ErrNotLeader) && !errors.Is(perr, apierr.ErrRecordTooLarge) {
					maybeStored = true
				}
				return p.c.leaderErr(tp.topic, parts, addr, perr)
			}
		}
		maybeStored = true
		return apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN, "produce reply has no result for %s", tp)
	})
	if err != nil {
		if p.ctx.Err() != nil {
			return maybeStored, ErrClosed
		}
		return maybeStored, err
	}
	// Records produced with a zero Timestamp get the one they were batched
	// with, so the caller sees what consumers will see.
	for i, pr := range batch {
		pr.r.Offset = base + int64(i)
		pr.r.Timestamp = recs[i].Timestamp
	}
	return false, nil
}
