package client

import (
	"context"
	"errors"
	"fmt"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
)

// Where a GroupConsumer's partitions start, and its fetches: the
// Consumer's (fetchLeaders, collectFetched, decodeFetched), over the
// partitions the member owns, whatever their topics.

// startPositions returns where each of tps starts: the group's committed
// offset, or by the ResetPolicy when there is none; and what is
// committed (-1: nothing).
func (gc *GroupConsumer) startPositions(ctx context.Context, tps []TopicPartition) (starts, committed map[TopicPartition]int64, err error) {
	offs, err := gc.c.fetchOffsets(ctx, gc.group, tps)
	if err != nil {
		return nil, nil, err
	}
	starts = make(map[TopicPartition]int64, len(tps))
	committed = make(map[TopicPartition]int64, len(tps))
	for _, tp := range tps {
		committed[tp] = -1
	}
	for _, o := range offs {
		tp := TopicPartition{o.GetTopic(), o.GetPartition()}
		if _, asked := committed[tp]; asked && o.GetOffset() >= 0 {
			starts[tp], committed[tp] = o.GetOffset(), o.GetOffset()
		}
	}
	need := make(map[string][]int32) // topic -> partitions with no commit
	for _, tp := range tps {
		if _, ok := starts[tp]; !ok {
			need[tp.Topic] = append(need[tp.Topic], tp.Partition)
		}
	}
	for topic, parts := range need {
		if gc.cfg.fetch.reset.kind == offsetNone {
			return nil, nil, fmt.Errorf("%s partitions %v have no committed offset (reset policy none)", topic, parts)
		}
		pos, err := gc.c.resolveOffset(ctx, topic, parts, gc.cfg.fetch.reset)
		if err != nil {
			return nil, nil, err
		}
		for p, o := range pos {
			starts[TopicPartition{topic, p}] = o
		}
	}
	return starts, committed, nil
}

// fetch sends one fetch per leader for pos and decodes the replies, like
// Consumer.fetch; records of a partition revoked or moved by Seek
// meanwhile are dropped.
func (gc *GroupConsumer) fetch(ctx context.Context, pos map[TopicPartition]int64) ([]*Record, error) {
	replies, failure := gc.c.fetchLeaders(ctx, pos, gc.cfg.fetch.maxWait, gc.cfg.fetch.fetchMaxBytes)
	return gc.c.collectFetched(ctx, replies, failure, func(ctx context.Context, pr *v1.FetchPartitionResult, via string) ([]*Record, error) {
		return gc.handle(ctx, pr, pos, via)
	})
}

// handle applies one partition's fetch result: records, a reset, or an
// error.
func (gc *GroupConsumer) handle(ctx context.Context, pr *v1.FetchPartitionResult, pos map[TopicPartition]int64, via string) ([]*Record, error) {
	tp := TopicPartition{pr.GetTopic(), pr.GetPartition()}
	from, ok := pos[tp]
	if !ok {
		return nil, nil
	}
	if err := apierr.FromProto(pr.GetError()); err != nil {
		if !errors.Is(err, apierr.ErrOffsetOutOfRange) {
			return nil, fmt.Errorf("fetch %s at %d: %w", tp, from, gc.c.leaderErr(tp.Topic, []int32{tp.Partition}, via, err))
		}
		to, err := gc.c.resetPosition(ctx, &gc.cfg.fetch, tp, from, err)
		if err != nil {
			return nil, err
		}
		gc.mu.Lock()
		st := gc.mu.parts[tp]
		moved := st != nil && st.pos == from
		if moved {
			st.pos = to
		}
		gc.mu.Unlock()
		if moved && gc.cfg.fetch.onReset != nil {
			gc.cfg.fetch.onReset(tp.Topic, tp.Partition, from, to)
		}
		return nil, nil
	}
	recs, next, err := decodeFetched(tp.Topic, tp.Partition, pr.GetBatches(), from)
	gc.mu.Lock()
	st := gc.mu.parts[tp]
	if st == nil || st.pos != from {
		recs = nil // revoked, or moved by Seek, while the fetch was out
	} else {
		st.pos, st.hw = next, pr.GetHighWatermark()
	}
	gc.mu.Unlock()
	if err != nil {
		return recs, fmt.Errorf("fetch %s at %d: %w", tp, from, err)
	}
	return recs, nil
}
