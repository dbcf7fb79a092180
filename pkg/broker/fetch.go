package broker

import (
	"context"
	"reflect"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/record"
)

// Fetch limits: a fetch never returns more than maxFetchBytes in all, and
// a partition gets defaultPartitionBytes unless it asks otherwise.
const (
	defaultPartitionBytes = 1 << 20
	defaultFetchBytes     = 50 << 20
)

// Fetch returns whole record batches from each requested partition,
// starting at (or just before) the requested offset and ending at the high
// watermark. It is a long poll: if fewer than min_bytes are available it
// waits, up to max_wait_ms (clamped to --max-fetch-wait), for producers.
//
// Only a leader holding a read lease answers (read_lease.go).
// Per-partition errors: NOT_LEADER, UNKNOWN_TOPIC, UNKNOWN_PARTITION,
// OFFSET_OUT_OF_RANGE (with the valid range), STORAGE (a corrupt segment:
// the batch is not served). A partition with an error does not fail the
// others, and any error ends the wait.
func (b *Broker) Fetch(ctx context.Context, req *v1.FetchRequest) (*v1.FetchResponse, error) {
	if len(req.Partitions) == 0 {
		return nil, apierr.ToStatus(apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_REQUEST, "fetch request names no partition"))
	}
	maxBytes := int(req.MaxBytes)
	if maxBytes <= 0 || maxBytes > defaultFetchBytes {
		maxBytes = defaultFetchBytes
	}
	maxBytes = min(maxBytes, b.cfg.MaxRequestBytes-(1<<20))
	wait := min(time.Duration(max(req.MaxWaitMs, 0))*time.Millisecond, b.cfg.MaxFetchWait)
	deadline := time.NewTimer(wait)
	defer deadline.Stop()

	for {
		// Take the wake-up channels before reading, so a commit between the
		// read and the wait still wakes us.
		wake := make([]<-chan struct{}, 0, len(req.Partitions))
		granted, release, err := b.takeFetchFor(ctx, maxBytes)
		if err != nil {
			return nil, apierr.ToStatus(err)
		}
		resp, total, failed := b.fetchOnce(ctx, req, granted, &wake)
		if total >= int(req.MinBytes) || failed || wait == 0 {
			defer release()
			b.countFetch(resp)
			return resp, nil
		}
		release()
		cases := make([]reflect.SelectCase, 0, len(wake)+2)
		cases = append(cases,
			reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
			reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(deadline.C)})
		for _, ch := range wake {
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
		}
		waitStart := time.Now()
		i, _, _ := reflect.Select(cases)
		addWaited(ctx, time.Since(waitStart))
		switch i {
		case 0:
			return nil, apierr.ToStatus(ctx.Err())
		case 1:
			granted, release, err := b.takeFetchFor(ctx, maxBytes)
			if err != nil {
				return nil, apierr.ToStatus(err)
			}
			defer release()
			resp, _, _ = b.fetchOnce(ctx, req, granted, nil)
			b.countFetch(resp)
			return resp, nil
		}
	}
}

// fetchOnce reads every partition once without waiting for records (a
// leader without a read lease waits for one: readLeaderFor).
func (b *Broker) fetchOnce(ctx context.Context, req *v1.FetchRequest, maxBytes int, wake *[]<-chan struct{}) (*v1.FetchResponse, int, bool) {
	resp := &v1.FetchResponse{Partitions: make([]*v1.FetchPartitionResult, 0, len(req.Partitions))}
	total, failed := 0, false
	b.renewReadLeases(len(req.Partitions), func(i int) (string, int32) { return req.Partitions[i].Topic, req.Partitions[i].Partition })
	for _, fp := range req.Partitions {
		r := &v1.FetchPartitionResult{Topic: fp.Topic, Partition: fp.Partition}
		resp.Partitions = append(resp.Partitions, r)
		p, err := b.readLeaderFor(ctx, fp.Topic, fp.Partition)
		if err != nil {
			r.Error, failed = apierr.ToProto(err), true
			continue
		}
		if wake != nil {
			*wake = append(*wake, p.Changed())
		}
		budget := int(fp.MaxBytes)
		if budget <= 0 {
			budget = defaultPartitionBytes
		}
		budget = min(budget, maxBytes-total)
		r.HighWatermark, r.LogStartOffset = p.HighWatermark(), p.LogStartOffset()
		if budget <= 0 && total > 0 {
			continue // the response is full; the next fetch continues here
		}
		data, err := p.Read(fp.Offset, max(budget, 1))
		if err != nil {
			r.Error, failed = apierr.ToProto(err), true
			continue
		}
		r.Batches = data
		total += len(data)
	}
	return resp, total, failed
}

// countFetch counts a fetch's answer per topic: what it returned (not
// what a long poll read and dropped while waiting for more).
func (b *Broker) countFetch(resp *v1.FetchResponse) {
	for _, r := range resp.Partitions {
		if r.Error != nil && r.Error.Code != v1.ErrorCode_ERROR_CODE_NONE {
			b.metrics.topicRequests.WithLabelValues("Fetch", r.Topic, errorCodeLabel(r.Error.Code)).Inc()
			continue
		}
		b.metrics.topicRequests.WithLabelValues("Fetch", r.Topic, "OK").Inc()
		if len(r.Batches) > 0 {
			b.metrics.bytesOut.WithLabelValues(r.Topic).Add(float64(len(r.Batches)))
			b.metrics.recordsOut.WithLabelValues(r.Topic).Add(float64(countRecords(r.Batches)))
		}
	}
}

// countRecords counts the records of the batches in data (whole batches:
// the first may start before the offset asked for).
func countRecords(data []byte) int {
	n := 0
	for len(data) > 0 {
		h, err := record.ParseHeader(data)
		if err != nil || h.Size() > len(data) {
			return n
		}
		n += int(h.RecordCount)
		data = data[h.Size():]
	}
	return n
}
