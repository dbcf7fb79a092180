package cluster

import (
	"encoding/binary"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Cluster time: what the brokers' wall clocks agree on.
//
// A broker decides some things by its wall clock alone, and one whose clock
// runs ahead decides them wrongly for every replica: a leader 48 h ahead
// moved the log start past records acknowledged seconds before, with
// retention.ms at 1 h (test/chaos/clockskew). Kafka has the same weakness.
// So each broker samples the others' clocks in the probes gossip already
// sends (memberlist's ping acks carry the acker's wall clock, as Consul's
// network coordinates ride on them), and AgreedNow is the median of its own
// clock and the others' as sampled: with one broker skewed, either way,
// the median is a correct one's.
//
//	ping ──────────────────────────► peer
//	     ◄── ack {peer's wall clock} ─┘   peer's time at receipt = theirs + rtt/2
//
// A sample is kept against this broker's monotonic clock, not its wall
// clock, so a jump of this broker's wall clock does not skew what it
// believes of the others': a peer's time now is its time at the sample
// plus the monotonic time since. A sample older than clockSampleTTL (a
// dead or cut-off broker's) is dropped. With an even count the lower
// middle is taken: the earlier time deletes less.

// clockSampleTTL: samples older than this are not used.
const clockSampleTTL = time.Minute

type clockSample struct {
	theirs time.Time // the peer's wall clock when sampled (no monotonic reading)
	at     time.Time // when sampled: a time.Now() reading, used for its monotonic clock
}

// peerNow is the peer's wall clock at now (a time.Now() reading) by s.
func (s clockSample) peerNow(now time.Time) time.Time { return s.theirs.Add(now.Sub(s.at)) }

type clocks struct {
	now func() time.Time // this broker's wall clock (Config.Clock)
	mu  sync.Mutex
	by  map[string]clockSample // by memberlist node name
}

// AckPayload implements memberlist.PingDelegate: this broker's wall clock.
func (c *clocks) AckPayload() []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(c.now().UnixNano()))
}

// NotifyPingComplete implements memberlist.PingDelegate.
func (c *clocks) NotifyPingComplete(other *memberlist.Node, rtt time.Duration, payload []byte) {
	if other == nil || len(payload) != 8 {
		return
	}
	theirs := time.Unix(0, int64(binary.BigEndian.Uint64(payload))).Add(rtt / 2)
	c.mu.Lock()
	c.by[other.Name] = clockSample{theirs: theirs, at: time.Now()}
	c.mu.Unlock()
}

// agreed is AgreedNow with explicit inputs: own is this broker's wall
// clock, others the others' as estimated from fresh samples.
func agreed(own time.Time, others []time.Time) time.Time {
	all := append([]time.Time{own.Round(0)}, others...)
	slices.SortFunc(all, func(a, b time.Time) int { return a.Compare(b) })
	return all[(len(all)-1)/2]
}

// AgreedNow is the median of this broker's wall clock and the others' as
// sampled within clockSampleTTL (see above). With no samples it is this
// broker's clock.
func (m *Membership) AgreedNow() time.Time {
	t, _ := m.AgreedNowOf(1)
	return t
}

// AgreedNowOf is AgreedNow for a cluster of brokers brokers, and whether
// the median is over a majority of them (this broker and fresh samples of
// at least brokers/2 others). Until it is, for instance in the first
// seconds after a start, before gossip has probed the others, the median
// may be this broker's clock alone: what deletes by time waits for ok.
func (m *Membership) AgreedNowOf(brokers int) (t time.Time, ok bool) {
	c := m.clocks
	own, now := c.now(), time.Now()
	c.mu.Lock()
	var others []time.Time
	for name, s := range c.by {
		if now.Sub(s.at) > clockSampleTTL {
			delete(c.by, name)
			continue
		}
		others = append(others, s.peerNow(now))
	}
	c.mu.Unlock()
	return agreed(own, others), majority(len(others), brokers)
}

// majority reports whether this broker and sampled others make a majority
// of brokers.
func majority(sampled, brokers int) bool { return 2*(1+sampled) > brokers }

// ClockOffsets returns each other broker's clock minus this one's, as last
// sampled within clockSampleTTL, by node name.
func (m *Membership) ClockOffsets() map[string]time.Duration {
	c := m.clocks
	own, now := c.now(), time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]time.Duration, len(c.by))
	for name, s := range c.by {
		if now.Sub(s.at) <= clockSampleTTL {
			out[name] = s.peerNow(now).Sub(own)
		}
	}
	return out
}
