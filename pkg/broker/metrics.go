package broker

import (
	"context"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/partition"
)

// metrics are the broker's Prometheus instruments, all prefixed strata_, on
// a registry of the broker's own (several brokers may share a test process).
type metrics struct {
	reg      *registry
	requests *prometheus.HistogramVec
	// requestCount counts calls by method and code (requests' histogram
	// counts them too; this is the counter dashboards rate() without
	// _count); topicRequests counts produce and fetch per topic and code.
	requestCount  *prometheus.CounterVec
	topicRequests *prometheus.CounterVec
	recordsOut    *prometheus.CounterVec
	bytesIn       *prometheus.CounterVec
	recordsIn     *prometheus.CounterVec
	bytesOut      *prometheus.CounterVec
	badBatches    *prometheus.CounterVec
	partition     *partition.Metrics
	// notReady tells whether a call must wait for the broker to be ready;
	// set by the broker.
	notReady func(method string) bool
	// waitReason says why the broker is not ready when it knows more
	// than "not ready" (whom it waits for at bootstrap), else ""; set by
	// the broker.
	waitReason   func() string
	commitSecs   prometheus.Histogram
	commitGroups prometheus.Histogram

	retentionDeleted prometheus.Counter // bytes of segments deleted below the log start
	earlyElections   prometheus.Counter // elections started because a leader's broker was found gone

	cleanerRead, cleanerWritten, cleanerReclaimed, cleanerRemoved, cleanerRuns prometheus.Counter
	cleanerLastRun                                                             prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		reg: &registry{Registry: prometheus.NewRegistry()},
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "strata_request_duration_seconds", Help: "API request latency by method and result code (codeLabel), without the time a Fetch spent waiting for records (its long poll).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}, []string{"method", "code"}),
		requestCount: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_requests_total", Help: "API requests by method and result code (OK, or the error code: RECORD_TOO_LARGE, NOT_LEADER, ...).",
		}, []string{"method", "code"}),
		topicRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_topic_requests_total", Help: "Produce and fetch requests per topic partition, by method, topic and result code.",
		}, []string{"method", "topic", "code"}),
		recordsOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_fetch_records_total", Help: "Records in the batches returned to fetches, by topic.",
		}, []string{"topic"}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_produce_bytes_total", Help: "Record batch bytes appended, by topic.",
		}, []string{"topic"}),
		recordsIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_produce_records_total", Help: "Records appended, by topic.",
		}, []string{"topic"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_fetch_bytes_total", Help: "Record batch bytes returned to fetches, by topic.",
		}, []string{"topic"}),
		badBatches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_produce_rejected_total", Help: "Produce requests rejected, by reason code.",
		}, []string{"code"}),
		commitSecs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "strata_produce_commit_seconds", Help: "Time from submitting a produce to its partition's Raft group until it is committed (stored and fsynced on a majority).",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 18),
		}),
		commitGroups: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "strata_produce_batches", Help: "Record batches per produce append to one partition.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		}),
		retentionDeleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_retention_deleted_bytes_total", Help: "Bytes of segments deleted because retention or delete-records moved the log start below them.",
		}),
		earlyElections: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_early_elections_total", Help: "Raft elections this broker's elector started: the group's leader was on a broker found gone (raft port refusing connections) or silent for --raft-heartbeat-timeout, or no leader was known (a new group, a restart), rather than after raft's own 20x longer timeout.",
		}),
		cleanerRead: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_cleaner_read_bytes_total", Help: "Bytes the compaction cleaner read.",
		}),
		cleanerWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_cleaner_written_bytes_total", Help: "Bytes the compaction cleaner wrote (compacted segments and their indexes).",
		}),
		cleanerReclaimed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_cleaner_reclaimed_bytes_total", Help: "Log bytes freed by compaction.",
		}),
		cleanerRemoved: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_cleaner_removed_records_total", Help: "Records removed by compaction (superseded records and expired tombstones).",
		}),
		cleanerRuns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_cleaner_runs_total", Help: "Completed compaction runs over one partition replica.",
		}),
		cleanerLastRun: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "strata_cleaner_last_run_timestamp_seconds", Help: "When the cleaner last completed a compaction run (Unix time).",
		}),
	}
	m.partition = &partition.Metrics{CommitSeconds: m.commitSecs, CommitBatches: m.commitGroups}
	m.notReady = func(string) bool { return false }
	m.waitReason = func() string { return "" }
	return m
}

func (m *metrics) register(b *Broker) {
	m.reg.MustRegister(m.requests, m.requestCount, m.topicRequests, m.recordsOut, m.bytesIn, m.recordsIn, m.bytesOut, m.badBatches, m.commitSecs, m.commitGroups, m.retentionDeleted, m.earlyElections,
		m.cleanerRead, m.cleanerWritten, m.cleanerReclaimed, m.cleanerRemoved, m.cleanerRuns, m.cleanerLastRun,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&partitionCollector{b: b}, &groupCollector{b: b}, &inflightCollector{b: b}, &brokerCollector{b: b}, &healthCollector{b: b})
}

func (m *metrics) interceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start := time.Now()
	var resp any
	var err error
	var waited time.Duration
	if m.notReady(info.FullMethod) {
		why := m.waitReason()
		if why == "" {
			why = "it has not joined a cluster or loaded the cluster's metadata yet, or the metadata quorum has no leader now"
		}
		err = apierr.ToStatus(apierr.New(v1.ErrorCode_ERROR_CODE_UNAVAILABLE, "broker not ready: %s (see /readyz); retry in a moment", why))
	} else {
		if info.FullMethod == v1.Strata_Fetch_FullMethodName {
			// Only a fetch waits on purpose (its long poll); other calls
			// skip the context layer.
			ctx = context.WithValue(ctx, waitedKey{}, &waited)
		}
		resp, err = h(ctx, req)
	}
	method, code := path.Base(info.FullMethod), codeLabel(err)
	m.requests.WithLabelValues(method, code).Observe((time.Since(start) - waited).Seconds())
	m.requestCount.WithLabelValues(method, code).Inc()
	return resp, err
}

// waitedKey holds a *time.Duration in a request's context: the time the
// handler spent waiting on purpose (a fetch's long poll), which the
// latency histogram leaves out.
type waitedKey struct{}

// addWaited records d as waited on purpose (see waitedKey).
func addWaited(ctx context.Context, d time.Duration) {
	if w, ok := ctx.Value(waitedKey{}).(*time.Duration); ok {
		*w += d
	}
}

// codeLabel is the code label of every metric: OK, Strata's error code
// without its ERROR_CODE_ prefix (RECORD_TOO_LARGE, NOT_LEADER, ...), or,
// for an error that carries none, gRPC's code in the same UPPER_SNAKE
// style (DEADLINE_EXCEEDED, CANCELED, ...).
func codeLabel(err error) string {
	if err == nil {
		return "OK"
	}
	st := status.Convert(err)
	for _, d := range st.Details() {
		if p, ok := d.(*v1.Error); ok {
			return errorCodeLabel(p.Code)
		}
	}
	return grpcCodeLabel(st.Code())
}

// errorCodeLabel is codeLabel for a per-partition error code.
func errorCodeLabel(c v1.ErrorCode) string {
	if c == v1.ErrorCode_ERROR_CODE_NONE {
		return "OK"
	}
	return strings.TrimPrefix(c.String(), "ERROR_CODE_")
}

// grpcCodeLabel spells a gRPC code as its protobuf enum name.
func grpcCodeLabel(c codes.Code) string {
	var b strings.Builder
	for i, r := range c.String() {
		if i > 0 && unicode.IsUpper(r) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}

// registry is the broker's Prometheus registry, remembering the
// descriptions of what is registered, so that a test can hold the list
// against docs/operations.md (a Registry cannot list them, and vectors
// without children do not show in a scrape).
type registry struct {
	*prometheus.Registry
	mu    sync.Mutex
	descs []*prometheus.Desc
}

// MustRegister registers cs and remembers their descriptions.
func (r *registry) MustRegister(cs ...prometheus.Collector) {
	r.Registry.MustRegister(cs...)
	r.remember(cs...)
}

// Register registers c and remembers its descriptions.
func (r *registry) Register(c prometheus.Collector) error {
	if err := r.Registry.Register(c); err != nil {
		return err
	}
	r.remember(c)
	return nil
}

func (r *registry) remember(cs ...prometheus.Collector) {
	ch := make(chan *prometheus.Desc)
	go func() {
		for _, c := range cs {
			c.Describe(ch)
		}
		close(ch)
	}()
	r.mu.Lock()
	defer r.mu.Unlock()
	for d := range ch {
		r.descs = append(r.descs, d)
	}
}

// names lists the fully-qualified names of what is registered.
func (r *registry) names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, d := range r.descs {
		// Desc keeps its name unexported; its String form starts with it.
		s := d.String()
		if i := strings.Index(s, `fqName: "`); i >= 0 {
			rest := s[i+len(`fqName: "`):]
			if j := strings.IndexByte(rest, '"'); j >= 0 {
				out = append(out, rest[:j])
			}
		}
	}
	return out
}

// partitionCollector reports per-partition gauges at scrape time, so the
// write path pays nothing for them.
type partitionCollector struct{ b *Broker }

var (
	descHWM      = prometheus.NewDesc("strata_partition_high_watermark", "First offset not yet visible to consumers; exported by the partition's leader only.", []string{"topic", "partition"}, nil)
	descLogStart = prometheus.NewDesc("strata_partition_log_start_offset", "First offset still stored.", []string{"topic", "partition"}, nil)
	descLogEnd   = prometheus.NewDesc("strata_partition_log_end_offset", "Offset the next record gets.", []string{"topic", "partition"}, nil)
	descSize     = prometheus.NewDesc("strata_partition_size_bytes", "Size of the partition's log on disk.", []string{"topic", "partition"}, nil)
	descSegments = prometheus.NewDesc("strata_partition_segments", "Segments in the partition's log.", []string{"topic", "partition"}, nil)
	descDirty    = prometheus.NewDesc("strata_partition_dirty_ratio", "Share of a compacted partition's closed-segment bytes not compacted yet (Kafka's cleanable dirty ratio).", []string{"topic", "partition"}, nil)
	descTopics   = prometheus.NewDesc("strata_topics", "Topics in the cluster.", nil, nil)
	descLeaders  = prometheus.NewDesc("strata_partition_leaders", "Partition replicas on this broker that lead their partition.", nil, nil)
)

func (c *partitionCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descHWM, descLogStart, descLogEnd, descSize, descSegments, descDirty, descTopics, descLeaders, descDamaged} {
		ch <- d
	}
}

func (c *partitionCollector) Collect(ch chan<- prometheus.Metric) {
	leaders := 0
	for _, p := range c.b.replicas.all() {
		name, id := p.Topic(), strconv.Itoa(int(p.ID()))
		if p.IsLeader() {
			// A follower's high watermark lags or stays 0 (consumers
			// read from leaders): only the leader's counts.
			ch <- prometheus.MustNewConstMetric(descHWM, prometheus.GaugeValue, float64(p.HighWatermark()), name, id)
		}
		ch <- prometheus.MustNewConstMetric(descLogStart, prometheus.GaugeValue, float64(p.LogStartOffset()), name, id)
		ch <- prometheus.MustNewConstMetric(descLogEnd, prometheus.GaugeValue, float64(p.LogEndOffset()), name, id)
		ch <- prometheus.MustNewConstMetric(descSize, prometheus.GaugeValue, float64(p.Size()), name, id)
		ch <- prometheus.MustNewConstMetric(descSegments, prometheus.GaugeValue, float64(len(p.Segments())), name, id)
		if p.CompactionTarget() > 0 {
			ch <- prometheus.MustNewConstMetric(descDirty, prometheus.GaugeValue, p.DirtyRatio(), name, id)
		}
		if p.IsLeader() {
			leaders++
		}
	}
	ch <- prometheus.MustNewConstMetric(descLeaders, prometheus.GaugeValue, float64(leaders))
	c.collectDamaged(ch)
	if c.b.meta != nil {
		ch <- prometheus.MustNewConstMetric(descTopics, prometheus.GaugeValue, float64(len(c.b.meta.Topics())))
	}
}
