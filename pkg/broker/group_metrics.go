package broker

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	v1 "github.com/stratalog/strata/api/v1"
)

// groupCollector exports, on each group's coordinator, the group's lag per
// partition and its member count, computed at scrape time (as
// DescribeGroup does), so only the coordinator reports a group.
type groupCollector struct{ b *Broker }

var (
	descGroupLag      = prometheus.NewDesc("strata_group_lag", "Records a consumer group has yet to commit on a partition (log end minus committed offset).", []string{"group", "topic", "partition"}, nil)
	descGroupTotalLag = prometheus.NewDesc("strata_group_total_lag", "A consumer group's lag summed over its partitions.", []string{"group"}, nil)
	descGroupMembers  = prometheus.NewDesc("strata_group_members", "Members of a consumer group.", []string{"group"}, nil)
	descGroupEpoch    = prometheus.NewDesc("strata_group_epoch", "A consumer group's epoch: it rises by one at every rebalance (a member joins, leaves or changes its subscription, or a subscribed topic gains partitions), so increase() over it counts rebalances.", []string{"group"}, nil)
)

func (c *groupCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descGroupLag
	ch <- descGroupTotalLag
	ch <- descGroupMembers
	ch <- descGroupEpoch
}

func (c *groupCollector) Collect(ch chan<- prometheus.Metric) {
	if c.b.coord == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, h := range c.b.coord.Homes() {
		for _, name := range h.Names() {
			d, err := c.b.DescribeGroup(ctx, &v1.DescribeGroupRequest{Group: name})
			if err != nil {
				continue
			}
			for _, p := range d.Partitions {
				ch <- prometheus.MustNewConstMetric(descGroupLag, prometheus.GaugeValue, float64(p.Lag), name, p.Topic, strconv.Itoa(int(p.Partition)))
			}
			ch <- prometheus.MustNewConstMetric(descGroupTotalLag, prometheus.GaugeValue, float64(d.TotalLag), name)
			ch <- prometheus.MustNewConstMetric(descGroupMembers, prometheus.GaugeValue, float64(len(d.Members)), name)
			ch <- prometheus.MustNewConstMetric(descGroupEpoch, prometheus.GaugeValue, float64(d.Epoch), name)
		}
	}
}
