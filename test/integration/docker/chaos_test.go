package docker

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/broker"
	"github.com/stratalog/strata/pkg/client"
	"github.com/stratalog/strata/pkg/record"
	"github.com/stratalog/strata/pkg/segment"
)

const (
	topic      = "chaos"
	partitions = 6
	producers  = 4
	// faultFor is how long a broker stays cut off or paused: well past the
	// Raft election timeout, so its partitions elect new leaders.
	faultFor = 10 * time.Second
)

// ack is one acknowledged record: where the cluster said it is.
type ack struct {
	partition int32
	offset    int64
	value     string
}

// stored is one record as a replica or a consumer holds it.
type stored struct {
	offset     int64
	key, value string
}

// TestChaos produces from several producers while one broker (a partition
// leader) is cut off the network and then another is paused, each for
// faultFor, and checks: every acknowledged record is read back at its
// acknowledged offset; after the cluster settles every replica of every
// partition holds the same records in the same order, and that is what
// consumers read.
func TestChaos(t *testing.T) {
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	cl, err := client.New([]string{"strata1:9290", "strata2:9290", "strata3:9290"},
		client.DialOptions(grpc.WithResolvers(hostMap(c.advertised()))),
		client.RetryTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.Admin().CreateTopic(ctx, topic, partitions, nodes, nil); err != nil {
		t.Fatal(err)
	}

	// Producers: each writes records with unique values until told to stop
	// (bounded in count too), remembering what was acknowledged.
	var (
		mu     sync.Mutex
		acks   []ack
		failed atomic.Int64
		stop   = make(chan struct{})
		wg     sync.WaitGroup
	)
	const maxPerProducer = 200_000
	for i := 0; i < producers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := cl.NewProducer(client.DeliveryTimeout(30 * time.Second))
			defer p.Close(context.Background())
			for seq := 0; seq < maxPerProducer; seq += 8 {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				recs := make([]*client.Record, 8)
				for j := range recs {
					n := seq + j
					recs[j] = &client.Record{Topic: topic, Key: []byte(fmt.Sprintf("k%d-%d", i, n%32)), Value: []byte(fmt.Sprintf("p%d-%07d", i, n))}
				}
				res := p.ProduceSync(ctx, recs...)
				mu.Lock()
				for _, r := range res {
					if r.Err != nil {
						failed.Add(1)
						continue
					}
					acks = append(acks, ack{r.Record.Partition, r.Record.Offset, string(r.Record.Value)})
				}
				mu.Unlock()
			}
		}()
	}
	acked := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acks)
	}
	// waitAcks waits (bounded) for n more acknowledgements than before.
	waitAcks := func(what string, n int, limit time.Duration) {
		t.Helper()
		want := acked() + n
		deadline := time.Now().Add(limit)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for acked() < want {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d records acknowledged, want %d within %s (%d failed)", what, acked(), want, limit, failed.Load())
			}
			<-tick.C
		}
	}
	stopProducers := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopProducers()
	waitAcks("before the faults", 500, 30*time.Second)

	// Fault 1: cut the leader of partition 0 off the network.
	desc, err := cl.Admin().DescribeTopic(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	cut := int(desc.Partitions[0].Leader)
	if cut < 1 || cut > nodes {
		t.Fatalf("partition 0 has leader %d", cut)
	}
	ip := c.ip(cut)
	before := acked()
	t.Logf("disconnecting strata%d (leader of partition 0, %s) for %s; %d acknowledged so far", cut, ip, faultFor, before)
	c.disconnect(cut)
	sleepCtx(ctx, faultFor)
	t.Logf("reconnecting strata%d: %d acknowledged while it was cut off, %d failed so far", cut, acked()-before, failed.Load())
	c.reconnect(cut, ip)
	c.waitHealthy(60 * time.Second)
	waitAcks("after reconnecting", 200, 60*time.Second)

	// Fault 2: pause another broker, preferably a leader.
	paused := cut%nodes + 1
	if desc, err = cl.Admin().DescribeTopic(ctx, topic); err == nil {
		for _, p := range desc.Partitions {
			if l := int(p.Leader); l >= 1 && l <= nodes && l != cut {
				paused = l
				break
			}
		}
	}
	before = acked()
	t.Logf("pausing strata%d for %s", paused, faultFor)
	c.pause(paused)
	sleepCtx(ctx, faultFor)
	t.Logf("unpausing strata%d: %d acknowledged while it was paused, %d failed so far", paused, acked()-before, failed.Load())
	c.unpause(paused)
	c.waitHealthy(60 * time.Second)
	waitAcks("after unpausing", 200, 60*time.Second)
	stopProducers()

	mu.Lock()
	all := slices.Clone(acks)
	mu.Unlock()
	t.Logf("%d records acknowledged, %d failed (not acknowledged: may or may not be stored)", len(all), failed.Load())

	// Settle: every replica of every partition at the same log end, all of
	// it committed.
	ends := waitConverged(t, ctx, c, 60*time.Second)

	// Every acknowledged record is where its acknowledgement said.
	consumed := consumeAll(t, ctx, cl, ends)
	for _, a := range all {
		recs := consumed[a.partition]
		if a.offset < 0 || a.offset >= int64(len(recs)) || recs[a.offset].value != a.value {
			got := "nothing"
			if a.offset >= 0 && a.offset < int64(len(recs)) {
				got = fmt.Sprintf("%q", recs[a.offset].value)
			}
			t.Errorf("acknowledged %q at %d/%d, a consumer reads %s there", a.value, a.partition, a.offset, got)
		}
	}
	seen := map[string]int{}
	for _, recs := range consumed {
		for _, r := range recs {
			seen[r.value]++
		}
	}
	dups := 0
	for _, n := range seen {
		dups += n - 1
	}
	t.Logf("consumers read %d records (%d distinct; %d duplicates from retried produces)", len(seen)+dups, len(seen), dups)

	// Every replica's log on disk, read after a clean stop, is exactly what
	// the consumers read.
	cl.Close()
	c.stop()
	dir := t.TempDir()
	for id := 1; id <= nodes; id++ {
		dst := filepath.Join(dir, fmt.Sprint(id))
		c.copyData(id, dst)
		for p := int32(0); p < partitions; p++ {
			recs := readReplica(t, dst, p)
			if !slices.Equal(recs, consumed[p]) {
				t.Errorf("strata%d's replica of partition %d: %s", id, p, diff(recs, consumed[p]))
			}
		}
	}
}

// waitConverged waits until, for every partition, the three replicas report
// one leader and the same log end offset and high watermark, and returns
// those offsets by partition. It asks each broker directly (the internal
// ReplicaStatus call) at its container's inter-broker address.
func waitConverged(t *testing.T, ctx context.Context, c *cluster, limit time.Duration) map[int32]int64 {
	t.Helper()
	status := map[int]v1.StrataInternalClient{}
	for id := range c.api {
		// The internal service is on the inter-broker listener (9292),
		// for brokers that prove the compose file's cluster secret.
		cc, err := broker.DialInternal(net.JoinHostPort(c.ip(id), "9292"), broker.Config{ClusterSecret: composeClusterSecret})
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		status[id] = v1.NewStrataInternalClient(cc)
	}
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var why string
	for {
		ends, reason := converged(ctx, status)
		if reason == "" {
			return ends
		}
		why = reason
		if time.Now().After(deadline) {
			t.Fatalf("replicas did not converge within %s: %s", limit, why)
		}
		<-tick.C
	}
}

// converged returns the common log end offsets, or why there are none yet.
func converged(ctx context.Context, status map[int]v1.StrataInternalClient) (map[int32]int64, string) {
	byPart := map[int32][]*v1.ReplicaState{}
	for id, st := range status {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		resp, err := st.ReplicaStatus(cctx, &v1.ReplicaStatusRequest{})
		cancel()
		if err != nil {
			return nil, fmt.Sprintf("strata%d: %v", id, err)
		}
		for _, r := range resp.Replicas {
			if r.Topic == topic {
				byPart[r.Partition] = append(byPart[r.Partition], r)
			}
		}
	}
	ends := map[int32]int64{}
	for p := int32(0); p < partitions; p++ {
		rs := byPart[p]
		if len(rs) != nodes {
			return nil, fmt.Sprintf("partition %d: %d replicas report, want %d", p, len(rs), nodes)
		}
		leaders := 0
		for _, r := range rs {
			if r.Role == "leader" {
				leaders++
			}
			if r.LogEndOffset != rs[0].LogEndOffset || r.HighWatermark != r.LogEndOffset {
				return nil, fmt.Sprintf("partition %d: replicas at (log end, high watermark) %v", p, offsets(rs))
			}
		}
		if leaders != 1 {
			return nil, fmt.Sprintf("partition %d: %d leaders", p, leaders)
		}
		ends[p] = rs[0].LogEndOffset
	}
	return ends, ""
}

func offsets(rs []*v1.ReplicaState) string {
	s := ""
	for _, r := range rs {
		// Everything a replica says of itself: enough to tell a lagging
		// follower from one that lost entries or took a snapshot install.
		s += fmt.Sprintf(" %d:(end %d, hwm %d, %s term %d, raft last %d commit %d, start %d, installs %d)",
			r.NodeId, r.LogEndOffset, r.HighWatermark, r.Role, r.Term, r.LastIndex, r.CommitIndex, r.LogStartOffset, r.SnapshotInstalls)
	}
	return s
}

// consumeAll reads every partition from the start to ends[p] through the
// client, indexed by offset (the topic is never truncated, so offsets
// start at 0 and have no gaps).
func consumeAll(t *testing.T, ctx context.Context, cl *client.Client, ends map[int32]int64) map[int32][]stored {
	t.Helper()
	cs, err := cl.NewConsumer(topic, client.StartAt(client.Earliest()))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	out := map[int32][]stored{}
	done := func() bool {
		for p, end := range ends {
			if int64(len(out[p])) < end {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(60 * time.Second)
	for polls := 0; !done(); polls++ {
		if time.Now().After(deadline) || polls > 100_000 {
			t.Fatalf("consumed %v of %v within 60s", lens(out), ends)
		}
		recs, err := cs.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if want := int64(len(out[r.Partition])); r.Offset != want {
				t.Fatalf("consumer got %d/%d, want offset %d next", r.Partition, r.Offset, want)
			}
			out[r.Partition] = append(out[r.Partition], stored{r.Offset, string(r.Key), string(r.Value)})
		}
	}
	return out
}

func lens(m map[int32][]stored) map[int32]int {
	out := map[int32]int{}
	for p, recs := range m {
		out[p] = len(recs)
	}
	return out
}

// readReplica reads partition p's whole log from a copy of a broker's data
// directory with the segment package, as the broker would after a restart.
func readReplica(t *testing.T, data string, p int32) []stored {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(data, "topics", topic+"-*", fmt.Sprint(p)))
	if err != nil || len(dirs) != 1 {
		entries, _ := os.ReadDir(filepath.Join(data, "topics"))
		t.Fatalf("%s: want one directory of partition %d, found %v (topics/: %v)", data, p, dirs, entries)
	}
	l, err := segment.Open(dirs[0], segment.DefaultOptions())
	if err != nil {
		t.Fatalf("open %s: %v", dirs[0], err)
	}
	defer l.Close()
	if r := l.RecoveryReport(); r != nil {
		t.Errorf("%s: a clean stop left a torn tail: %v", dirs[0], r)
	}
	var out []stored
	end := l.NextOffset()
	for off, reads := l.StartOffset(), 0; off < end; reads++ {
		if reads > 1_000_000 {
			t.Fatalf("%s: no progress reading at %d", dirs[0], off)
		}
		b, err := l.Read(off, end, 1<<20)
		if err != nil {
			t.Fatalf("%s: read at %d: %v", dirs[0], off, err)
		}
		if len(b) == 0 {
			t.Fatalf("%s: read at %d returned nothing before the end %d", dirs[0], off, end)
		}
		for len(b) > 0 {
			batch, h, rest, err := record.Next(b)
			if err != nil {
				t.Fatalf("%s: batch at %d: %v", dirs[0], off, err)
			}
			recs, err := record.Decode(batch, record.DecodeOptions{})
			if err != nil {
				t.Fatalf("%s: decode batch at %d: %v", dirs[0], h.BaseOffset, err)
			}
			for _, r := range recs {
				if r.Offset >= off {
					out = append(out, stored{r.Offset, string(r.Key), string(r.Value)})
				}
			}
			off = max(off, h.NextOffset())
			b = rest
		}
	}
	return out
}

// diff describes the first difference between a replica and what the
// consumers read.
func diff(replica, consumed []stored) string {
	for i := 0; i < min(len(replica), len(consumed)); i++ {
		if replica[i] != consumed[i] {
			return fmt.Sprintf("record %d is %+v, consumers read %+v", i, replica[i], consumed[i])
		}
	}
	return fmt.Sprintf("%d records, consumers read %d", len(replica), len(consumed))
}

// sleepCtx waits d or until ctx ends: the length of a fault, not a wait
// for a condition.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
