package broker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/stratalog/strata/pkg/segment"
)

// The scrubber re-reads every closed segment of this broker's replicas in
// the background (segment.Log.Scrub), at --scrub-rate bytes per second
// shared by all of them, one pass every --scrub-interval (the first a
// minute after start, or sooner with a shorter interval). Recovery reads
// only active segments, so without it damage in a closed segment shows only
// when a read reaches it, perhaps after the other replicas are gone too.
// A damaged frame is rewritten from another replica's copy of the same
// entry when one fits (Group.RepairDamage), logged at warn and counted in
// strata_scrub_repaired_frames_total. One that cannot be repaired (a sole
// replica, or every copy compacted differently) is logged once at error
// and counted in strata_scrub_damaged_segments until a pass finds it sound
// (or gone); see docs/operations.md, "Damaged logs".
type scrubber struct {
	b        *Broker
	limit    *rate.Limiter
	interval time.Duration
	read     prometheus.Counter
	passes   prometheus.Counter
	repaired prometheus.Counter
	reported map[string]bool // "group segment position" logged; scrubber goroutine only

	mu struct {
		sync.Mutex
		damaged map[string]scrubDamage // by group
	}
}

type scrubDamage struct {
	topic     string
	partition int32
	segments  int
}

// scrubFirstDelay: the first pass waits this long (or one interval, if
// shorter) so that it does not compete with a broker's start.
const scrubFirstDelay = time.Minute

var descScrubDamaged = prometheus.NewDesc("strata_scrub_damaged_segments",
	"Closed segments of this partition replica that the last background scrub found damaged (a bad frame, or a segment not ending where the next begins); reads that reach them fail.",
	[]string{"topic", "partition"}, nil)

func newScrubber(b *Broker) *scrubber {
	s := &scrubber{
		b: b, interval: b.cfg.ScrubInterval, reported: map[string]bool{},
		read: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_scrub_read_bytes_total", Help: "Bytes of closed segments the background scrub re-read and checked.",
		}),
		passes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_scrub_passes_total", Help: "Completed background scrub passes over every replica on this broker.",
		}),
		repaired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_scrub_repaired_frames_total", Help: "Damaged frames in closed segments the background scrub rewrote from another replica's copy of the entry.",
		}),
	}
	s.mu.damaged = map[string]scrubDamage{}
	if bps := b.cfg.ScrubBytesPerSecond; bps > 0 {
		s.limit = rate.NewLimiter(rate.Limit(bps), max(segment.ThrottleChunk, int(min(bps, math.MaxInt32))))
	}
	b.metrics.reg.MustRegister(s.read, s.passes, s.repaired, s)
	return s
}

// run scrubs until ctx ends; with --scrub-rate 0 it returns at once.
func (s *scrubber) run(ctx context.Context) {
	if s.limit == nil {
		return
	}
	t := time.NewTimer(min(scrubFirstDelay, s.interval))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		if !s.pass(ctx) {
			return
		}
		t.Reset(max(s.interval-time.Since(start), 0))
	}
}

// pass scrubs every open replica once; false when ctx ended.
func (s *scrubber) pass(ctx context.Context) bool {
	start := time.Now()
	var bytes int64
	seen := map[string]bool{}
	for _, p := range s.b.replicas.all() {
		group := p.GroupName()
		seen[group] = true
		res, err := p.Group().Log().Scrub(ctx, segment.ScrubOptions{Throttle: s.limit.WaitN})
		bytes += res.Bytes
		s.read.Add(float64(res.Bytes))
		switch {
		case ctx.Err() != nil:
			return false
		case errors.Is(err, segment.ErrClosed):
			continue // closed or removed meanwhile
		case err != nil:
			s.b.log.Warn("scrub of a partition replica stopped; retrying at the next pass",
				zap.String("topic", p.Topic()), zap.Int32("partition", p.ID()), zap.Error(err))
			continue
		}
		left := 0
		for _, d := range res.Damage {
			// Every replica stores the same bytes: rewrite the frame from
			// another's copy (replication/repair.go).
			from, rerr := p.Group().RepairDamage(ctx, d)
			if rerr == nil {
				s.repaired.Inc()
				s.b.log.Warn("scrub repaired a damaged frame in a closed segment from another replica's copy",
					zap.String("topic", p.Topic()), zap.Int32("partition", p.ID()), zap.String("segment", d.Segment),
					zap.Int64("position", d.Offset), zap.Error(d.Err), zap.String("from", string(from)))
				continue
			}
			if ctx.Err() != nil {
				return false
			}
			left++
			key := fmt.Sprintf("%s %s %d", group, d.Segment, d.Offset)
			if s.reported[key] {
				continue
			}
			s.reported[key] = true
			s.b.log.Error("scrub found damage in a closed segment and could not repair it from another replica: reads that reach it fail (docs/operations.md, \"Damaged logs\")",
				zap.String("topic", p.Topic()), zap.Int32("partition", p.ID()),
				zap.String("segment", d.Segment), zap.Int64("position", d.Offset), zap.Error(d.Err), zap.NamedError("repair", rerr))
		}
		s.mu.Lock()
		if left > 0 {
			s.mu.damaged[group] = scrubDamage{topic: p.Topic(), partition: p.ID(), segments: left}
		} else {
			delete(s.mu.damaged, group)
		}
		s.mu.Unlock()
	}
	s.mu.Lock()
	for g := range s.mu.damaged {
		if !seen[g] {
			delete(s.mu.damaged, g)
		}
	}
	s.mu.Unlock()
	s.passes.Inc()
	s.b.log.Info("scrub pass done", zap.Int64("bytes", bytes), zap.Duration("took", time.Since(start)))
	return true
}

// Describe and Collect report strata_scrub_damaged_segments.
func (s *scrubber) Describe(ch chan<- *prometheus.Desc) { ch <- descScrubDamaged }

func (s *scrubber) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.mu.damaged {
		ch <- prometheus.MustNewConstMetric(descScrubDamaged, prometheus.GaugeValue, float64(d.segments), d.topic, strconv.Itoa(int(d.partition)))
	}
}
