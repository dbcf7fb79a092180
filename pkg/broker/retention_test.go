package broker_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/brokertest"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/broker"
	"github.com/stratalog/strata/pkg/client"
	"github.com/stratalog/strata/pkg/record"
)

// Retention on the replicated log: the log start moves on every replica,
// segments below it go, reads below it are out of range, and a replica
// added afterwards gets the log by snapshot install.

// fakeClock is a settable clock for retention decisions.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// produceSized writes n records of about size bytes to partition 0 of
// topic, one batch each, with timestamps ts, through whichever broker
// leads, and returns their offsets.
func produceSized(t *testing.T, addrs []string, topic string, n, size int, ts time.Time) []int64 {
	t.Helper()
	var offs []int64
	for i := range n {
		b, err := record.Encode([]record.Record{{Key: fmt.Appendf(nil, "k%d", i), Value: []byte(strings.Repeat("v", size)), Timestamp: ts}},
			record.EncodeOptions{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1})
		if err != nil {
			t.Fatal(err)
		}
		offs = append(offs, onLeader(t, addrs, func(c v1.StrataClient) (int64, error) {
			resp, err := c.Produce(ctx(t), &v1.ProduceRequest{Topic: topic, Partitions: []*v1.ProducePartition{{Partition: 0, Batches: b}}})
			if err != nil {
				return 0, err
			}
			r := resp.Partitions[0]
			return r.BaseOffset, apierr.FromProto(r.Error)
		}))
	}
	return offs
}

// onLeader runs call against each broker until one is not "not leader".
func onLeader[T any](t *testing.T, addrs []string, call func(v1.StrataClient) (T, error)) T {
	t.Helper()
	var last error
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, a := range addrs {
			v, err := call(dial(t, a))
			if err == nil {
				return v
			}
			last = err
			if !apierr.Retriable(apierr.FromStatus(err)) && !errors.Is(err, apierr.ErrNotLeader) {
				t.Fatalf("on %s: %v", a, err)
			}
		}
		time.Sleep(50 * time.Millisecond) // the leader is being elected; nothing to wait on
	}
	t.Fatalf("no leader answered: %v", last)
	var zero T
	return zero
}

func deleteRecords(t *testing.T, addrs []string, topic string, before int64) (int64, error) {
	t.Helper()
	var perr error
	start := onLeader(t, addrs, func(c v1.StrataClient) (int64, error) {
		resp, err := c.DeleteRecords(ctx(t), &v1.DeleteRecordsRequest{Topic: topic, Partitions: []*v1.DeleteRecordsPartition{{Partition: 0, BeforeOffset: before}}})
		if err != nil {
			return 0, err
		}
		r := resp.Partitions[0]
		err = apierr.FromProto(r.Error)
		if err != nil && !apierr.Retriable(err) {
			perr = err // a final answer, not a routing problem
			return 0, nil
		}
		return r.LogStartOffset, err
	})
	return start, perr
}

// replicaStarts reads each broker's replica of the topic's partition 0:
// its log start offset, by node id.
func replicaStarts(t *testing.T, c *brokertest.Cluster, ids ...uint32) map[uint32]int64 {
	t.Helper()
	out := map[uint32]int64{}
	for id, st := range replicaStates(t, c, ids...) {
		out[id] = st.LogStartOffset
	}
	return out
}

// replicaStates reads each broker's (only) replica state, by node id.
func replicaStates(t *testing.T, c *brokertest.Cluster, ids ...uint32) map[uint32]*v1.ReplicaState {
	t.Helper()
	out := map[uint32]*v1.ReplicaState{}
	for _, id := range ids {
		cc := dialInternal(t, c.Broker(id))
		resp, err := cc.ReplicaStatus(ctx(t), &v1.ReplicaStatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range resp.Replicas {
			out[id] = r
		}
	}
	return out
}

// dialInternal is a client of b's internal service, on its inter-broker
// listener, proving the test clusters' secret.
func dialInternal(t *testing.T, b *broker.Broker) v1.StrataInternalClient {
	return v1.NewStrataInternalClient(internalConn(t, b))
}

// segmentFiles counts the .log files of the topic's partition 0 on a broker.
func segmentFiles(t *testing.T, cfg broker.Config, topic string) int {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(cfg.DataDir, "topics", topic+"-*", "0", "*.log"))
	return len(files)
}

func fetchErr(t *testing.T, addrs []string, topic string, offset int64) error {
	t.Helper()
	return onLeader(t, addrs, func(c v1.StrataClient) (error, error) {
		resp, err := c.Fetch(ctx(t), &v1.FetchRequest{Partitions: []*v1.FetchPartition{{Topic: topic, Partition: 0, Offset: offset}}, MaxBytes: 1 << 20})
		if err != nil {
			return nil, err
		}
		err = apierr.FromProto(resp.Partitions[0].Error)
		if errors.Is(err, apierr.ErrNotLeader) {
			return nil, err
		}
		return err, nil
	})
}

func TestDeleteRecordsAndSnapshotInstall(t *testing.T) {
	c := brokertest.StartCluster(t, 3, func(cfg *broker.Config) { cfg.RetentionCheckInterval = 50 * time.Millisecond })
	addrs := c.APIAddrs()
	cl := newClient(t, addrs)
	a := cl.Admin()
	if _, err := a.CreateTopic(ctx(t), "dr", 1, 3, map[string]string{"segment.bytes": "4096", "max.message.bytes": "2048"}); err != nil {
		t.Fatal(err)
	}
	adminWaitInSync(t, a, "dr")
	offs := produceSized(t, addrs, "dr", 60, 500, time.Now())
	cut := offs[40]

	start, err := deleteRecords(t, addrs, "dr", cut)
	if err != nil || start != cut {
		t.Fatalf("delete-records before %d: log start %d, %v", cut, start, err)
	}
	eventually(t, "every replica's log start moves", func() bool {
		for _, s := range replicaStarts(t, c, 1, 2, 3) {
			if s != cut {
				return false
			}
		}
		return true
	})
	eventually(t, "every replica deletes the segments below the log start", func() bool {
		for _, cfg := range c.Configs {
			if n := segmentFiles(t, cfg, "dr"); n == 0 || n > 4 {
				return false
			}
		}
		return true
	})
	var oor *apierr.Error
	if err := fetchErr(t, addrs, "dr", 0); !errors.As(err, &oor) || oor.Code != v1.ErrorCode_ERROR_CODE_OFFSET_OUT_OF_RANGE || oor.LogStartOffset != cut {
		t.Fatalf("fetch at 0 after delete-records: %v", err)
	}
	// Moving backwards is a no-op; beyond the high watermark is refused.
	if start, err := deleteRecords(t, addrs, "dr", 3); err != nil || start != cut {
		t.Fatalf("delete-records before 3: %d, %v", start, err)
	}
	if _, err := deleteRecords(t, addrs, "dr", 1_000_000); !errors.Is(err, apierr.ErrOffsetOutOfRange) {
		t.Fatalf("delete-records beyond the end: %v", err)
	}

	// A new replica cannot be caught up from the leader's log (its start
	// is gone): it gets a snapshot install and fetches the log.
	c.Add()
	if err := a.MovePartition(ctx(t), "dr", 0, []uint32{2, 3, 4}, nil); err != nil {
		t.Fatalf("move: %v", err)
	}
	adminWaitInSync(t, a, "dr")
	more := produceSized(t, addrs[1:], "dr", 5, 500, time.Now())
	eventually(t, "broker 4's replica has the log start", func() bool {
		return replicaStarts(t, c, 4)[4] == cut
	})
	if n := replicaStates(t, c, 4)[4].SnapshotInstalls; n < 1 {
		t.Errorf("broker 4 caught up with %d snapshot installs; the leader had deleted its log's start, so it needs one", n)
	}
	// Read everything from broker 4 alone, after moving leadership there.
	if _, err := a.TransferLeader(ctx(t), "dr", 0, 4); err != nil {
		t.Fatalf("transfer to 4: %v", err)
	}
	cs, err := newClient(t, []string{c.Broker(4).APIAddr()}).NewConsumer("dr")
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	var got []int64
	for len(got) < 25 {
		recs, err := cs.Poll(ctx(t))
		if err != nil {
			t.Fatalf("consume from broker 4: %v (have %d)", err, len(got))
		}
		for _, r := range recs {
			got = append(got, r.Offset)
		}
	}
	want := append(slices.Clone(offs[40:]), more...)
	if !slices.Equal(got, want) {
		t.Fatalf("broker 4 serves offsets %v, want %v", got, want)
	}
}

func TestRetentionByTimeAndSize(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	cfg := brokertest.Config(t, 1)
	cfg.RetentionCheckInterval = 20 * time.Millisecond
	cfg.Clock = clock.Now
	b := brokertest.Run(t, cfg)
	addrs := []string{b.APIAddr()}
	cl := newClient(t, addrs)
	a := cl.Admin()

	// By time: records an hour old survive a 2 h limit, not a 30 min one.
	if _, err := a.CreateTopic(ctx(t), "bytime", 1, 1, map[string]string{"segment.bytes": "4096", "max.message.bytes": "2048", "retention.ms": "7200000"}); err != nil {
		t.Fatal(err)
	}
	old := produceSized(t, addrs, "bytime", 30, 500, clock.Now().Add(-time.Hour))
	fresh := produceSized(t, addrs, "bytime", 3, 500, clock.Now())
	_ = old
	time.Sleep(100 * time.Millisecond) // several retention checks; nothing may happen, so nothing to wait on
	if s := logStart(t, a, "bytime"); s != 0 {
		t.Fatalf("log start %d before anything expired", s)
	}
	if _, err := a.AlterTopicConfig(ctx(t), "bytime", map[string]string{"retention.ms": "1800000"}, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "expired segments go", func() bool {
		s := logStart(t, a, "bytime")
		return s > 0 && s <= fresh[0]
	})

	// By size: the log keeps at least retention.bytes, minus one segment.
	if _, err := a.CreateTopic(ctx(t), "bysize", 1, 1, map[string]string{"segment.bytes": "4096", "max.message.bytes": "2048", "retention.bytes": "8192"}); err != nil {
		t.Fatal(err)
	}
	produceSized(t, addrs, "bysize", 60, 500, clock.Now())
	eventually(t, "the log shrinks to retention.bytes", func() bool {
		d, err := a.DescribeTopic(ctx(t), "bysize")
		if err != nil {
			return false
		}
		p := d.Partitions[0]
		return p.LogStartOffset > 0 && p.SizeBytes <= 8192+4096
	})

	// An immutable topic refuses delete-records and never expires.
	if _, err := a.CreateTopic(ctx(t), "ledger", 1, 1, map[string]string{"segment.bytes": "4096", "max.message.bytes": "2048", "immutable": "true"}); err != nil {
		t.Fatal(err)
	}
	produceSized(t, addrs, "ledger", 30, 500, clock.Now().Add(-24*365*time.Hour))
	if _, err := deleteRecords(t, addrs, "ledger", 5); !errors.Is(err, apierr.ErrPolicyViolation) {
		t.Fatalf("delete-records on an immutable topic: %v", err)
	}
	// Every way to shrink it through the API is refused, and changes nothing.
	for _, set := range []map[string]string{
		{"retention.ms": "1000"}, {"retention.bytes": "1024"}, {"cleanup.policy": "compact"},
		{"cleanup.policy": "compact,delete"}, {"immutable": "false"},
	} {
		if _, err := a.AlterTopicConfig(ctx(t), "ledger", set, nil); !errors.Is(err, apierr.ErrPolicyViolation) && !errors.Is(err, apierr.ErrInvalidConfig) {
			t.Errorf("alter-config %v on an immutable topic: %v", set, err)
		}
	}
	if _, err := a.AlterTopicConfig(ctx(t), "ledger", nil, []string{"immutable"}); !errors.Is(err, apierr.ErrPolicyViolation) {
		t.Errorf("removing immutable: %v", err)
	}
	if err := a.DeleteTopic(ctx(t), "ledger"); !errors.Is(err, apierr.ErrPolicyViolation) {
		t.Errorf("deleting an immutable topic: %v", err)
	}
	clock.Add(100 * 365 * 24 * time.Hour)
	time.Sleep(100 * time.Millisecond) // several retention checks; nothing may happen
	if s := logStart(t, a, "ledger"); s != 0 {
		t.Fatalf("immutable topic's log start moved to %d", s)
	}
}

func logStart(t *testing.T, a *client.Admin, topic string) int64 {
	t.Helper()
	d, err := a.DescribeTopic(ctx(t), topic)
	if err != nil {
		t.Fatal(err)
	}
	return d.Partitions[0].LogStartOffset
}
