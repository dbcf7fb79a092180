package partition

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/goleak"

	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/metadata"
	"github.com/stratalog/strata/pkg/record"
	"github.com/stratalog/strata/pkg/replication"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testConfig(t *testing.T, raw map[string]string) metadata.TopicConfig {
	t.Helper()
	c, err := metadata.ParseTopicConfig(raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// open starts a single-replica partition in dir: a Raft group of one, on an
// in-memory transport, with its term and vote in a stable store in dir.
func open(t *testing.T, dir string, o func(*Options)) *Partition {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	stable, err := replication.OpenStableStores(filepath.Join(dir, "stable.db"))
	if err != nil {
		t.Fatal(err)
	}
	addr, trans := raft.NewInmemTransport("node-1")
	rc := replication.DefaultRaftConfig()
	rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = 100*time.Millisecond, 100*time.Millisecond, 50*time.Millisecond
	opts := Options{
		Dir: filepath.Join(dir, "log"), Topic: "t", ID: 0, Group: "g/0", Config: testConfig(t, nil),
		NodeID: "1", Transport: trans, Stable: stable.For("g/0"), Raft: rc,
		Bootstrap: []raft.Server{{ID: "1", Address: addr, Suffrage: raft.Voter}},
	}
	if o != nil {
		o(&opts)
	}
	p, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(); stable.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for !p.IsLeader() {
		if time.Now().After(deadline) {
			t.Fatal("single replica did not become leader within 10s")
		}
		time.Sleep(5 * time.Millisecond) // raft offers no wait for "I lead"
	}
	return p
}

func batch(t testing.TB, values ...string) []byte {
	t.Helper()
	recs := make([]record.Record, len(values))
	for i, v := range values {
		recs[i] = record.Record{Key: []byte("k"), Value: []byte(v), Timestamp: time.UnixMilli(1_700_000_000_000 + int64(i))}
	}
	b, err := record.Encode(recs, record.EncodeOptions{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readAll decodes every visible record from offset 0.
func readAll(t *testing.T, p *Partition) []record.Record {
	t.Helper()
	var out []record.Record
	for off := p.LogStartOffset(); off < p.HighWatermark(); {
		data, err := p.Read(off, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		for rest := data; len(rest) > 0; {
			b, _, r, err := record.Next(rest)
			if err != nil {
				t.Fatal(err)
			}
			rest = r
			recs, err := record.Decode(b, record.DecodeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, rec := range recs {
				if rec.Offset >= off {
					out = append(out, rec)
				}
			}
		}
		off = out[len(out)-1].Offset + 1
	}
	return out
}

func TestAppendReadOffsets(t *testing.T) {
	p := open(t, t.TempDir(), nil)
	ctx := context.Background()
	r1, err := p.Append(ctx, [][]byte{batch(t, "a", "b", "c")}, AcksQuorum)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := p.Append(ctx, [][]byte{batch(t, "d"), batch(t, "e", "f")}, AcksQuorum)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Base != 0 || r1.Last != 2 || r2.Base != 3 || r2.Last != 5 {
		t.Fatalf("offsets %+v %+v", r1, r2)
	}
	if p.HighWatermark() != 6 || p.LogEndOffset() != 6 {
		t.Fatalf("hwm %d leo %d", p.HighWatermark(), p.LogEndOffset())
	}
	recs := readAll(t, p)
	for i, want := range []string{"a", "b", "c", "d", "e", "f"} {
		if string(recs[i].Value) != want || recs[i].Offset != int64(i) {
			t.Fatalf("record %d = %v", i, recs[i])
		}
	}
}

func TestConcurrentAppendsShareCommits(t *testing.T) {
	p := open(t, t.TempDir(), nil)
	const writers, each = 16, 50
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	seen := make([][]int64, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				r, err := p.Append(context.Background(), [][]byte{batch(t, fmt.Sprintf("%d-%d", w, i))}, AcksQuorum)
				if err != nil {
					errs <- err
					return
				}
				seen[w] = append(seen[w], r.Base)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Every offset handed out once, each writer's offsets rising.
	all := map[int64]bool{}
	for w, offs := range seen {
		for i, o := range offs {
			if all[o] {
				t.Fatalf("offset %d handed out twice", o)
			}
			all[o] = true
			if i > 0 && o <= offs[i-1] {
				t.Fatalf("writer %d offsets not rising: %v", w, offs)
			}
		}
	}
	if len(all) != writers*each || p.HighWatermark() != writers*each {
		t.Fatalf("%d offsets, hwm %d", len(all), p.HighWatermark())
	}
	recs := readAll(t, p)
	if len(recs) != writers*each {
		t.Fatalf("read %d records", len(recs))
	}
}

func TestRejectsBadBatchesAndStoresNothing(t *testing.T) {
	p := open(t, t.TempDir(), func(o *Options) {
		o.Config = testConfig(t, map[string]string{"max.message.bytes": "200"})
	})
	good := batch(t, "ok")
	corrupt := batch(t, "x")
	corrupt[len(corrupt)-1] ^= 0xff
	big := batch(t, string(make([]byte, 300)))
	tests := []struct {
		name    string
		batches [][]byte
		want    error
	}{
		{"crc", [][]byte{good, corrupt}, apierr.ErrCorruptBatch},
		{"truncated", [][]byte{good[:len(good)-3]}, apierr.ErrCorruptBatch},
		{"too large", [][]byte{big}, apierr.ErrRecordTooLarge},
		{"empty", nil, apierr.ErrInvalidRequest},
	}
	for _, tt := range tests {
		_, err := p.Append(context.Background(), tt.batches, AcksQuorum)
		if !errors.Is(apierr.FromError(err), tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
	}
	if p.LogEndOffset() != 0 {
		t.Fatalf("rejected batches were stored: log end %d", p.LogEndOffset())
	}
}

func TestReadRange(t *testing.T) {
	p := open(t, t.TempDir(), nil)
	if _, err := p.Append(context.Background(), [][]byte{batch(t, "a", "b")}, AcksQuorum); err != nil {
		t.Fatal(err)
	}
	if b, err := p.Read(2, 1000); err != nil || b != nil {
		t.Fatalf("read at hwm: %v %v", b, err)
	}
	for _, off := range []int64{-1, 3, 1 << 40} {
		_, err := p.Read(off, 1000)
		var e *apierr.Error
		if !errors.As(err, &e) || !errors.Is(e, apierr.ErrOffsetOutOfRange) || e.LogStartOffset != 0 || e.HighWatermark != 2 {
			t.Fatalf("read %d: %v", off, err)
		}
	}
}

func TestChangedWakesOnCommit(t *testing.T) {
	p := open(t, t.TempDir(), nil)
	ch := p.Changed()
	select {
	case <-ch:
		t.Fatal("woke before any commit")
	default:
	}
	if _, err := p.Append(context.Background(), [][]byte{batch(t, "a")}, AcksQuorum); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("not woken by a commit")
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	p := open(t, dir, nil)
	for i := 0; i < 20; i++ {
		if _, err := p.Append(context.Background(), [][]byte{batch(t, fmt.Sprint(i))}, AcksQuorum); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Append(context.Background(), [][]byte{batch(t, "late")}, AcksQuorum); !errors.Is(apierr.FromError(err), apierr.ErrUnavailable) && !errors.Is(apierr.FromError(err), apierr.ErrNotLeader) {
		t.Fatalf("append after close: %v", err)
	}
	p = open(t, filepath.Join(dir, "again"), func(o *Options) { o.Dir = filepath.Join(dir, "log") })
	if p.HighWatermark() != 20 {
		t.Fatalf("hwm after reopen %d", p.HighWatermark())
	}
	r, err := p.Append(context.Background(), [][]byte{batch(t, "next")}, AcksQuorum)
	if err != nil || r.Base != 20 {
		t.Fatalf("append after reopen: %+v %v", r, err)
	}
	if n := len(readAll(t, p)); n != 21 {
		t.Fatalf("read %d records", n)
	}
}

func TestAcksNone(t *testing.T) {
	p := open(t, t.TempDir(), nil)
	ctx := context.Background()
	r, err := p.Append(ctx, [][]byte{batch(t, "b")}, AcksNone)
	if err != nil || r.Base != -1 {
		t.Fatalf("acks=none: %+v %v", r, err)
	}
	r, err = p.Append(ctx, [][]byte{batch(t, "c")}, AcksQuorum)
	if err != nil {
		t.Fatal(err)
	}
	if r.Base != 0 && r.Base != 1 {
		t.Fatalf("after acks=none: %+v", r)
	}
	if n := len(readAll(t, p)); n != 2 && r.Base == 1 {
		t.Fatalf("acks=none record lost: read %d", n)
	}
}

func TestAppendHonoursContext(t *testing.T) {
	p := open(t, t.TempDir(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// A cancelled context either fails before queueing or reports the
	// outcome as unknown; it never hangs.
	_, err := p.Append(ctx, [][]byte{batch(t, "a")}, AcksQuorum)
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

func TestSetConfigChangesRolling(t *testing.T) {
	p := open(t, t.TempDir(), nil)
	ctx := context.Background()
	big := string(make([]byte, 600))
	for i := 0; i < 4; i++ {
		if _, err := p.Append(ctx, [][]byte{batch(t, big)}, AcksQuorum); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(p.Segments()); n != 1 {
		t.Fatalf("%d segments before the change", n)
	}
	p.SetConfig(testConfig(t, map[string]string{"segment.bytes": "1024", "max.message.bytes": "1024"}))
	for i := 0; i < 4; i++ {
		if _, err := p.Append(ctx, [][]byte{batch(t, big)}, AcksQuorum); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(p.Segments()); n < 4 {
		t.Fatalf("%d segments after segment.bytes=1024, want one per batch", n)
	}
	if n := len(readAll(t, p)); n != 8 {
		t.Fatalf("read %d records", n)
	}
}
