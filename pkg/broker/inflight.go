package broker

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/budget"
	"github.com/stratalog/strata/pkg/apierr"
)

// Memory under load: produce requests take their batches' bytes from one
// budget before they are handed to raft, fetches take their response's
// bytes from another, and both give them back once answered. When a
// budget is spent, requests wait for it, in arrival order, up to the
// request's own deadline: clients slow down instead of the broker's memory
// growing with their number (200 producers with 1 MiB batches each are
// 200 MiB queued in raft and its replication otherwise). A fetch takes
// what is left, down to 1 MiB, rather than waiting for its full size.
//
// gRPC reads a request whole into memory as soon as its stream opens,
// before any handler runs, so a budget in the handler alone bounds what
// raft and the log hold, not what waits for them: one client connection
// carrying 200 producers' requests made a broker hold 1.9 GB. The other
// half of the bound is --max-streams-per-connection (100): HTTP/2 makes
// the client hold back requests past it. A broker then holds at most the
// budget plus, per connection, that many requests.
//
// Not counted: replication between brokers (bounded by the transport's
// pipeline window) and the consumer group coordinator's own appends.
type inflight struct {
	produce, fetch *budget.Budget
}

func (f *inflight) init(size int64) {
	f.produce, f.fetch = budget.New(size), budget.New(size)
}

// fetchLeast is the least a fetch waits for: one ordinary batch.
const fetchLeast = 1 << 20

// takeProduce takes n bytes for a produce request, waiting up to ctx's
// deadline. The error says the broker is busy and the request was not
// written (retriable).
func (b *Broker) takeProduce(ctx context.Context, n int64) (release func(), err error) {
	got, err := b.inflight.produce.Acquire(ctx, n, n)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, apierr.New(v1.ErrorCode_ERROR_CODE_UNAVAILABLE,
				"broker busy: %d MiB of produce requests already in flight (--max-inflight-bytes); nothing of this request was written, retry", b.inflight.produce.Size()>>20)
		}
		return nil, err
	}
	return func() { b.inflight.produce.Release(got) }, nil
}

// takeFetch takes up to want bytes for a fetch response, at least
// fetchLeast (or want, if smaller), waiting up to ctx's deadline.
func (b *Broker) takeFetch(ctx context.Context, want int) (int, func(), error) {
	got, err := b.inflight.fetch.Acquire(ctx, min(fetchLeast, int64(want)), int64(want))
	if err != nil {
		return 0, nil, err
	}
	return int(got), func() { b.inflight.fetch.Release(got) }, nil
}

// inflightCollector reports the budgets in use as strata_inflight_bytes.
type inflightCollector struct{ b *Broker }

var inflightDesc = prometheus.NewDesc("strata_inflight_bytes",
	"Bytes of produce requests being appended, or of fetch responses being read, held now (kind=produce|fetch); bounded by --max-inflight-bytes each.",
	[]string{"kind"}, nil)

func (c *inflightCollector) Describe(ch chan<- *prometheus.Desc) { ch <- inflightDesc }

func (c *inflightCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(inflightDesc, prometheus.GaugeValue, float64(c.b.inflight.produce.InUse()), "produce")
	ch <- prometheus.MustNewConstMetric(inflightDesc, prometheus.GaugeValue, float64(c.b.inflight.fetch.InUse()), "fetch")
}

// inflightWaitLimit bounds a fetch's wait for its budget, so that a
// consumer sees a short empty answer rather than its call timing out.
const inflightWaitLimit = 5 * time.Second

// takeFetchFor is takeFetch waiting at most inflightWaitLimit; past it
// the fetch answers UNAVAILABLE (retriable).
func (b *Broker) takeFetchFor(ctx context.Context, want int) (int, func(), error) {
	ctx, cancel := context.WithTimeout(ctx, inflightWaitLimit)
	defer cancel()
	got, release, err := b.takeFetch(ctx, want)
	if errors.Is(err, context.DeadlineExceeded) {
		return 0, nil, apierr.New(v1.ErrorCode_ERROR_CODE_UNAVAILABLE,
			"broker busy: %d MiB of fetch responses already being read (--max-inflight-bytes); retry", b.inflight.fetch.Size()>>20)
	}
	return got, release, err
}
