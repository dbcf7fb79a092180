package broker

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/stratalog/strata/pkg/cluster"
)

// Partition health, as an operator alerts on it: in-sync replicas and
// follower lag of the partitions this broker leads, and, on the metadata
// quorum's leader only, the cluster's offline and under-replicated
// partition counts (so that a sum over brokers counts each once).
//
// It is computed every healthEvery by asking the replicas' brokers, as
// `strata topic describe` does (replicaStates), and exported from that
// snapshot at scrape time, so a scrape costs no RPC.
const healthEvery = 15 * time.Second

// healthView is the last health check's result.
type healthView struct {
	mu  sync.Mutex
	led []ledHealth
	// cluster-wide counts, valid when controller is set.
	controller               bool
	offline, underReplicated int
}

// ledHealth is one partition this broker led at the last check.
type ledHealth struct {
	topic, partition string
	replicas, isr    int
	lag              []*lagHealth
}

type lagHealth struct {
	replica        string
	records, bytes int64
}

// runHealth refreshes b.health every healthEvery until ctx ends.
func (b *Broker) runHealth(ctx context.Context) {
	every(ctx, healthEvery, func() { b.checkHealth(ctx) })
}

func (b *Broker) checkHealth(ctx context.Context) {
	if b.meta == nil || !b.ready.Load() {
		return
	}
	controller := b.meta.IsLeader()
	var led []ledHealth
	offline, under := 0, 0
	for _, t := range b.meta.Topics() {
		leadsOne := false
		for p := range t.Assignments {
			if r, ok := b.replicas.get(t.GroupName(int32(p))); ok && r.IsLeader() {
				leadsOne = true
				break
			}
		}
		if !controller && !leadsOne {
			continue
		}
		states := b.replicaStates(ctx, t)
		for i, a := range t.Assignments {
			p := int32(i)
			v := viewPartition(a, states[t.GroupName(p)])
			if controller {
				switch {
				case v.leader == 0:
					offline++
				case len(v.isr) < len(a.Replicas):
					under++
				}
			}
			r, ok := b.replicas.get(t.GroupName(p))
			if !ok || !r.IsLeader() || v.leader != b.cfg.NodeID {
				continue
			}
			h := ledHealth{topic: t.Name, partition: strconv.Itoa(int(p)), replicas: len(a.Replicas), isr: len(v.isr)}
			for _, l := range v.lagging {
				h.lag = append(h.lag, &lagHealth{replica: strconv.Itoa(int(l.NodeId)), records: l.OffsetsBehind, bytes: l.BytesBehind})
			}
			led = append(led, h)
		}
		if ctx.Err() != nil {
			return
		}
	}
	b.health.mu.Lock()
	b.health.led, b.health.controller, b.health.offline, b.health.underReplicated = led, controller, offline, under
	b.health.mu.Unlock()
}

var (
	descISR        = prometheus.NewDesc("strata_partition_in_sync_replicas", "In-sync replicas of a partition this broker leads (as `strata topic describe` shows them), at the last health check (every 15 s).", []string{"topic", "partition"}, nil)
	descReplicas   = prometheus.NewDesc("strata_partition_replicas", "Assigned replicas of a partition this broker leads.", []string{"topic", "partition"}, nil)
	descUnderRepl  = prometheus.NewDesc("strata_partition_under_replicated", "1 if a partition this broker leads has fewer in-sync replicas than assigned ones, else 0.", []string{"topic", "partition"}, nil)
	descLagRecords = prometheus.NewDesc("strata_partition_replica_lag_records", "Offsets an out-of-sync replica of a partition this broker leads is behind the high watermark.", []string{"topic", "partition", "replica"}, nil)
	descLagBytes   = prometheus.NewDesc("strata_partition_replica_lag_bytes", "Bytes (estimated from the leader's segments) an out-of-sync replica of a partition this broker leads is behind.", []string{"topic", "partition", "replica"}, nil)
	descOffline    = prometheus.NewDesc("strata_cluster_offline_partitions", "Partitions with no leader, over the whole cluster; exported by the metadata quorum's leader only.", nil, nil)
	descUnderAll   = prometheus.NewDesc("strata_cluster_under_replicated_partitions", "Partitions with a leader but fewer in-sync replicas than assigned, over the whole cluster; exported by the metadata quorum's leader only.", nil, nil)
)

type healthCollector struct{ b *Broker }

func (c *healthCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descISR, descReplicas, descUnderRepl, descLagRecords, descLagBytes, descOffline, descUnderAll} {
		ch <- d
	}
}

func (c *healthCollector) Collect(ch chan<- prometheus.Metric) {
	h := &c.b.health
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range h.led {
		ch <- prometheus.MustNewConstMetric(descISR, prometheus.GaugeValue, float64(p.isr), p.topic, p.partition)
		ch <- prometheus.MustNewConstMetric(descReplicas, prometheus.GaugeValue, float64(p.replicas), p.topic, p.partition)
		under := 0.0
		if p.isr < p.replicas {
			under = 1
		}
		ch <- prometheus.MustNewConstMetric(descUnderRepl, prometheus.GaugeValue, under, p.topic, p.partition)
		for _, l := range p.lag {
			ch <- prometheus.MustNewConstMetric(descLagRecords, prometheus.GaugeValue, float64(l.records), p.topic, p.partition, l.replica)
			ch <- prometheus.MustNewConstMetric(descLagBytes, prometheus.GaugeValue, float64(l.bytes), p.topic, p.partition, l.replica)
		}
	}
	if h.controller {
		ch <- prometheus.MustNewConstMetric(descOffline, prometheus.GaugeValue, float64(h.offline))
		ch <- prometheus.MustNewConstMetric(descUnderAll, prometheus.GaugeValue, float64(h.underReplicated))
	}
}

// brokerCollector exports what the broker is: its build, its state, its
// view of the other brokers and its data directory's free space.
type brokerCollector struct{ b *Broker }

var (
	descBuild      = prometheus.NewDesc("strata_build_info", "Always 1; the labels say which build runs.", []string{"version", "go_version"}, nil)
	descState      = prometheus.NewDesc("strata_broker_state", "1 for this broker's state: waiting_for_peers (bootstrapping or joining a cluster), starting (metadata loaded, not serving yet), ready, stopping; 0 for the others.", []string{"state"}, nil)
	descBrokers    = prometheus.NewDesc("strata_cluster_brokers", "Brokers by state (alive, suspect, dead, left) as this broker's gossip sees them.", []string{"state"}, nil)
	descDiskFree   = prometheus.NewDesc("strata_data_dir_free_bytes", "Bytes free to the broker on the file system of --data-dir.", []string{"dir"}, nil)
	descDiskTotal  = prometheus.NewDesc("strata_data_dir_capacity_bytes", "Size of the file system of --data-dir.", []string{"dir"}, nil)
	brokerStates   = []string{"waiting_for_peers", "starting", "ready", "stopping"}
	memberStates   = []cluster.State{cluster.Alive, cluster.Suspect, cluster.Dead, cluster.Left}
	goBuildVersion = runtime.Version()
)

func (c *brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBuild, descState, descBrokers, descDiskFree, descDiskTotal} {
		ch <- d
	}
}

func (c *brokerCollector) Collect(ch chan<- prometheus.Metric) {
	b := c.b
	ch <- prometheus.MustNewConstMetric(descBuild, prometheus.GaugeValue, 1, Version, goBuildVersion)
	state := b.state()
	for _, s := range brokerStates {
		v := 0.0
		if s == state {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, v, s)
	}
	if b.members != nil {
		counts := map[cluster.State]int{}
		for _, m := range b.members.Members() {
			counts[m.State]++
		}
		for _, s := range memberStates {
			ch <- prometheus.MustNewConstMetric(descBrokers, prometheus.GaugeValue, float64(counts[s]), string(s))
		}
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(b.cfg.DataDir, &fs); err == nil {
		ch <- prometheus.MustNewConstMetric(descDiskFree, prometheus.GaugeValue, float64(fs.Bavail)*float64(fs.Bsize), b.cfg.DataDir)
		ch <- prometheus.MustNewConstMetric(descDiskTotal, prometheus.GaugeValue, float64(fs.Blocks)*float64(fs.Bsize), b.cfg.DataDir)
	}
}

// state is the broker's state as strata_broker_state names it.
func (b *Broker) state() string {
	switch {
	case b.stopping.Load():
		return "stopping"
	case b.ready.Load():
		return "ready"
	case b.meta == nil || !b.meta.HasState():
		return "waiting_for_peers"
	}
	return "starting"
}
