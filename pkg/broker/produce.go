package broker

import (
	"context"
	"sync"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/partition"
	"github.com/stratalog/strata/pkg/record"
)

// Produce appends record batches to partitions of one topic and answers
// with each partition's first and last offset once the acks are met
// (quorum: committed and, with --fsync=always, on disk).
//
// Whole-call errors: UNKNOWN_TOPIC (the topic is created instead when
// --auto-create-topics is on), INVALID_REQUEST, POLICY_VIOLATION for an
// internal topic (internal_topics.go). Per-partition errors:
// UNKNOWN_PARTITION, CORRUPT_BATCH (CRC or framing; nothing of that
// partition's request is stored), RECORD_TOO_LARGE (over max.message.bytes),
// STORAGE, UNAVAILABLE (shutting down; retry), and UNAVAILABLE on timeout:
// the records may or may not have been written. A broker whose produce
// budget (--max-inflight-bytes) stays spent until the request's timeout
// answers UNAVAILABLE, nothing written (inflight.go).
func (b *Broker) Produce(ctx context.Context, req *v1.ProduceRequest) (*v1.ProduceResponse, error) {
	if len(req.Partitions) == 0 {
		return nil, apierr.ToStatus(apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_REQUEST, "produce request names no partition"))
	}
	if err := refuseInternal("produce to", req.Topic); err != nil {
		return nil, apierr.ToStatus(err)
	}
	if _, ok := b.meta.Topic(req.Topic); !ok {
		if !b.cfg.AutoCreateTopics {
			return nil, apierr.ToStatus(apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN_TOPIC,
				"topic %q does not exist (create it first, or start the broker with --auto-create-topics)", req.Topic))
		}
		if _, err := b.createTopic(ctx, req.Topic, b.cfg.DefaultPartitions, 0, nil, false); err != nil && !apierr.ErrTopicExists.Is(apierr.FromError(err)) {
			return nil, apierr.ToStatus(err)
		}
	}
	timeout := b.cfg.ProduceTimeout
	if req.TimeoutMs > 0 {
		timeout = min(timeout, time.Duration(req.TimeoutMs)*time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var size int64
	for _, pp := range req.Partitions {
		size += int64(len(pp.Batches))
	}
	release, err := b.takeProduce(ctx, size)
	if err != nil {
		return nil, apierr.ToStatus(err)
	}
	defer release()

	// ACKS_LEADER counts as quorum: under Raft a batch is acknowledged
	// once committed, and nothing weaker than acks=none is offered.
	acks := partition.AcksQuorum
	if req.Acks == v1.Acks_ACKS_NONE {
		acks = partition.AcksNone
	}
	resp := &v1.ProduceResponse{Partitions: make([]*v1.ProducePartitionResult, len(req.Partitions))}
	if len(req.Partitions) == 1 { // the common case: no goroutine needed
		resp.Partitions[0] = b.producePartition(ctx, req.Topic, req.Partitions[0], acks)
		return resp, nil
	}
	var wg sync.WaitGroup
	for i, pp := range req.Partitions {
		// Partitions commit independently, so their Raft commits overlap.
		wg.Go(func() {
			err := b.recover.catch(v1.Strata_Produce_FullMethodName, req, func() { resp.Partitions[i] = b.producePartition(ctx, req.Topic, pp, acks) })
			if err != nil {
				resp.Partitions[i] = &v1.ProducePartitionResult{Partition: pp.Partition, BaseOffset: -1, LastOffset: -1,
					Error: apierr.ToProto(apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN, "internal error (logged by the broker)"))}
			}
		})
	}
	wg.Wait()
	return resp, nil
}

func (b *Broker) producePartition(ctx context.Context, topic string, pp *v1.ProducePartition, acks partition.Acks) *v1.ProducePartitionResult {
	res := &v1.ProducePartitionResult{Partition: pp.Partition, BaseOffset: -1, LastOffset: -1}
	fail := func(err error) *v1.ProducePartitionResult {
		e := apierr.ToProto(err)
		code := errorCodeLabel(e.Code)
		b.metrics.badBatches.WithLabelValues(code).Inc()
		b.metrics.topicRequests.WithLabelValues("Produce", topic, code).Inc()
		res.Error = e
		return res
	}
	p, err := b.leaderFor(topic, pp.Partition)
	if err != nil {
		return fail(err)
	}
	cfg, ok := b.replicaConfig(p.GroupName())
	if !ok {
		return fail(apierr.New(v1.ErrorCode_ERROR_CODE_UNAVAILABLE, "%s/%d is closing on this broker; retry", topic, pp.Partition))
	}
	now := b.agreedNow().UnixMilli()
	var batches [][]byte
	var records int64
	stamped := false
	for rest := pp.Batches; len(rest) > 0; {
		var batch []byte
		var h record.BatchHeader
		batch, h, rest, err = record.Next(rest)
		if err != nil {
			return fail(err)
		}
		// Timestamps: refused outside the topic's window, or replaced by
		// the broker's time (timestamps.go).
		s, err := stampBatch(batch, h, cfg, now)
		if err != nil {
			return fail(err)
		}
		stamped = stamped || s
		batches = append(batches, batch)
		records += int64(h.RecordCount)
	}
	r, err := p.Append(ctx, batches, acks)
	if err != nil {
		return fail(err)
	}
	b.metrics.bytesIn.WithLabelValues(topic).Add(float64(len(pp.Batches)))
	b.metrics.recordsIn.WithLabelValues(topic).Add(float64(records))
	b.metrics.topicRequests.WithLabelValues("Produce", topic, "OK").Inc()
	res.BaseOffset, res.LastOffset, res.LogStartOffset = r.Base, r.Last, r.LogStart
	res.LogAppendTimeMs = -1
	if stamped {
		res.LogAppendTimeMs = now
	}
	return res
}
