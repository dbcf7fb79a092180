package broker

import (
	"context"
	"path"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/partition"
)

// metrics are the broker's Prometheus instruments, all prefixed strata_, on
// a registry of the broker's own (several brokers may share a test process).
type metrics struct {
	reg        *prometheus.Registry
	requests   *prometheus.HistogramVec
	bytesIn    *prometheus.CounterVec
	recordsIn  *prometheus.CounterVec
	bytesOut   *prometheus.CounterVec
	badBatches *prometheus.CounterVec
	partition  *partition.Metrics
	// notReady tells whether a call must wait for the broker to be ready;
	// set by the broker.
	notReady     func(method string) bool
	commitSecs   prometheus.Histogram
	commitGroups prometheus.Histogram

	retentionDeleted prometheus.Counter // bytes of segments deleted below the log start
	earlyElections   prometheus.Counter // elections started because a leader's broker was found gone

	cleanerRead, cleanerWritten, cleanerReclaimed, cleanerRemoved, cleanerRuns prometheus.Counter
	cleanerLastRun                                                             prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "strata_request_duration_seconds", Help: "API request latency by method and result code.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}, []string{"method", "code"}),
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
	return m
}

func (m *metrics) register(b *Broker) {
	m.reg.MustRegister(m.requests, m.bytesIn, m.recordsIn, m.bytesOut, m.badBatches, m.commitSecs, m.commitGroups, m.retentionDeleted, m.earlyElections,
		m.cleanerRead, m.cleanerWritten, m.cleanerReclaimed, m.cleanerRemoved, m.cleanerRuns, m.cleanerLastRun,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&partitionCollector{b: b}, &groupCollector{b: b}, &inflightCollector{b: b})
}

func (m *metrics) interceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start := time.Now()
	var resp any
	var err error
	if m.notReady(info.FullMethod) {
		err = apierr.ToStatus(apierr.New(v1.ErrorCode_ERROR_CODE_UNAVAILABLE,
			"broker not ready: it has not joined a cluster or loaded the cluster's metadata yet, or the metadata quorum has no leader now (see /readyz); retry in a moment"))
	} else {
		resp, err = h(ctx, req)
	}
	m.requests.WithLabelValues(path.Base(info.FullMethod), status.Code(err).String()).Observe(time.Since(start).Seconds())
	return resp, err
}

// partitionCollector reports per-partition gauges at scrape time, so the
// write path pays nothing for them.
type partitionCollector struct{ b *Broker }

var (
	descHWM      = prometheus.NewDesc("strata_partition_high_watermark", "First offset not yet visible to consumers.", []string{"topic", "partition"}, nil)
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
		ch <- prometheus.MustNewConstMetric(descHWM, prometheus.GaugeValue, float64(p.HighWatermark()), name, id)
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
