package broker

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratalog/strata/pkg/metadata"
)

// Damaged replicas.
//
// A partition replica whose log lost acknowledged records to damage
// (segment recovery found a bad frame with valid ones after it, or a log
// that had to be discarded) either abstains from votes while it fetches
// them back from its leader (replication/abstain.go; it stays open and
// shows in strata_replica_damaged with state "refetching"), or, when it is
// the partition's only replica, does not open at all: there is no copy to
// fetch, and electing itself would give new records the offsets of the
// lost ones. Such a replica is remembered here, reported (replication logs
// it once at error) in strata_replica_damaged with state "waiting_for_operator", and not
// retried until the broker restarts (docs/operations.md, "Damaged logs").

var descDamaged = prometheus.NewDesc("strata_replica_damaged",
	"1 for a partition replica whose log lost acknowledged records: state refetching (abstains from votes until fetched back from the leader) or waiting_for_operator (the only replica; not opened).",
	[]string{"topic", "partition", "state"}, nil)

type damagedReplica struct {
	topic     string
	partition int32
}

// markDamaged remembers a replica that cannot open for want of a healthy
// copy. replication logged it at error, once: it is not retried.
func (b *Broker) markDamaged(group string, t metadata.Topic, p int32) {
	b.replicas.mu.Lock()
	b.replicas.mu.damaged[group] = damagedReplica{topic: t.Name, partition: p}
	b.replicas.mu.Unlock()
}

// isDamaged reports whether group is a replica markDamaged remembers.
func (rs *replicas) isDamaged(group string) bool {
	rs.mu.RLock()
	defer rs.mu.RUnlock()
	_, ok := rs.mu.damaged[group]
	return ok
}

// forgetDamaged drops remembered replicas this broker no longer holds.
func (rs *replicas) forgetDamaged(want map[string]bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for g := range rs.mu.damaged {
		if !want[g] {
			delete(rs.mu.damaged, g)
		}
	}
}

// collectDamaged reports strata_replica_damaged.
func (c *partitionCollector) collectDamaged(ch chan<- prometheus.Metric) {
	for _, p := range c.b.replicas.all() {
		if p.AbstainUntil() != 0 {
			ch <- prometheus.MustNewConstMetric(descDamaged, prometheus.GaugeValue, 1, p.Topic(), strconv.Itoa(int(p.ID())), "refetching")
		}
	}
	c.b.replicas.mu.RLock()
	defer c.b.replicas.mu.RUnlock()
	for _, d := range c.b.replicas.mu.damaged {
		ch <- prometheus.MustNewConstMetric(descDamaged, prometheus.GaugeValue, 1, d.topic, strconv.Itoa(int(d.partition)), "waiting_for_operator")
	}
}
