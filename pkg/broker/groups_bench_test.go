package broker_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/brokertest"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/client"
)

// BenchmarkGroupRebalance: a group of 10 members on a 100-partition topic,
// each heartbeating at the interval it is told and at once when what it
// owns changes (as the client does); one member joins, then leaves. It
// reports the time until every member owns exactly its target (the group
// is stable), and fails if a member that was not asked to give up a
// partition ever lost one.
//
//	go test -run '^$' -bench BenchmarkGroupRebalance -benchtime 5x ./pkg/broker
func BenchmarkGroupRebalance(b *testing.B) {
	c := benchBroker(b, "rb", 100)
	warm := &benchMember{c: c, group: "warm-up"}
	warm.beat(b)
	warm.leave()
	var joins, leaves []time.Duration
	for i := range b.N {
		group := fmt.Sprintf("rb-%d", i)
		ms := make([]*benchMember, 10)
		for j := range ms {
			ms[j] = &benchMember{c: c, group: group}
		}
		runUntilStable(b, c, group, ms)
		extra := &benchMember{c: c, group: group}
		start := time.Now()
		runUntilStable(b, c, group, append(ms, extra))
		joins = append(joins, time.Since(start))
		extra.leave()
		start = time.Now()
		runUntilStable(b, c, group, ms)
		leaves = append(leaves, time.Since(start))
	}
	slices.Sort(joins)
	slices.Sort(leaves)
	b.ReportMetric(float64(joins[len(joins)/2].Milliseconds()), "join-ms-p50")
	b.ReportMetric(float64(leaves[len(leaves)/2].Milliseconds()), "leave-ms-p50")
	b.ReportMetric(float64(joins[len(joins)-1].Milliseconds()), "join-ms-max")
}

type benchMember struct {
	c        v1.StrataClient
	group    string
	id       string
	epoch    int32
	owned    []int32
	interval time.Duration
}

// beat heartbeats, acts on the answer at once, and reports whether what
// it owns changed and what it gave up.
func (m *benchMember) beat(tb testing.TB) (changed bool, lost []int32) {
	req := &v1.GroupHeartbeatRequest{Group: m.group, MemberId: m.id, MemberEpoch: m.epoch,
		Topics: []string{"rb"}, Owned: []*v1.TopicPartitions{{Topic: "rb", Partitions: m.owned}}}
	resp, err := heartbeat(m.c, req)
	if err != nil {
		tb.Errorf("heartbeat: %v", err)
		return false, nil
	}
	m.id, m.epoch = resp.MemberId, resp.MemberEpoch
	m.interval = time.Duration(resp.HeartbeatIntervalMs) * time.Millisecond
	var now []int32
	for _, tp := range resp.Assignment {
		now = append(now, tp.Partitions...)
	}
	slices.Sort(now)
	for _, p := range m.owned {
		if !slices.Contains(now, p) {
			lost = append(lost, p)
		}
	}
	changed = !slices.Equal(now, m.owned)
	m.owned = now
	return changed, lost
}

func (m *benchMember) leave() {
	m.c.GroupHeartbeat(context.Background(), &v1.GroupHeartbeatRequest{Group: m.group, MemberId: m.id, MemberEpoch: -1})
}

// runUntilStable runs the members' heartbeat loops until the coordinator
// says the group is stable with exactly these members. A member whose
// partitions change heartbeats again at once; others every interval.
func runUntilStable(tb testing.TB, c v1.StrataClient, group string, ms []*benchMember) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, m := range ms {
		wg.Go(func() {
			for ctx.Err() == nil {
				if changed, _ := m.beat(tb); changed {
					continue
				}
				select {
				case <-ctx.Done():
				case <-time.After(m.interval):
				}
			}
		})
	}
	for {
		d, err := c.DescribeGroup(ctx, &v1.DescribeGroupRequest{Group: group})
		if err == nil && d.State == "stable" && len(d.Members) == len(ms) {
			break
		}
		if ctx.Err() != nil {
			tb.Fatalf("group %s not stable within 30s", group)
		}
		time.Sleep(5 * time.Millisecond) // polling the coordinator's view
	}
	cancel()
	wg.Wait()
}

// BenchmarkCommitOffsets: commits per second on one coordinator, each
// commit one offset, replicated with quorum acks and fsynced.
//
//	go test -run '^$' -bench BenchmarkCommitOffsets ./pkg/broker
func BenchmarkCommitOffsets(b *testing.B) {
	c := benchBroker(b, "co", 16)
	b.SetParallelism(8) // 8 goroutines per core: many members committing at once
	var mu sync.Mutex
	n := 0
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		mu.Lock()
		n++
		group := fmt.Sprintf("co-%d", n)
		mu.Unlock()
		req := &v1.GroupHeartbeatRequest{Group: group, Topics: []string{"co"}}
		resp, err := heartbeat(c, req)
		if err != nil {
			b.Error(err)
			return
		}
		off := int64(0)
		for pb.Next() {
			off++
			r, err := c.CommitOffsets(context.Background(), &v1.CommitOffsetsRequest{Group: group, MemberId: resp.MemberId, MemberEpoch: resp.MemberEpoch,
				Offsets: []*v1.OffsetCommit{{Topic: "co", Partition: int32(off % 16), Offset: off}}})
			if err != nil || r.Results[0].Error != nil {
				b.Errorf("commit: %v %v", err, r)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
}

// heartbeat sends req, retrying while the coordinator is still loading
// the offsets partition (NOT_COORDINATOR, retriable) for up to 5 s.
func heartbeat(c v1.StrataClient, req *v1.GroupHeartbeatRequest) (*v1.GroupHeartbeatResponse, error) {
	resp, err := c.GroupHeartbeat(context.Background(), req)
	for i := 0; err != nil && apierr.Retriable(apierr.FromStatus(err)) && i < 100; i++ {
		time.Sleep(50 * time.Millisecond) // the coordinator is loading the offsets partition
		resp, err = c.GroupHeartbeat(context.Background(), req)
	}
	return resp, err
}

// benchBroker starts a broker with a topic of n partitions and returns a
// raw API client to it.
func benchBroker(b *testing.B, topic string, n int32) v1.StrataClient {
	br := brokertest.StartBroker(b)
	addr := br.APIAddr()
	cl, err := client.New([]string{addr})
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.Admin().CreateTopic(context.Background(), topic, n, 1, nil); err != nil {
		b.Fatal(err)
	}
	return dial(b, addr)
}
