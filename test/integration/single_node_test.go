package integration

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/pkg/client"
	"github.com/stratalog/strata/pkg/record"
)

const e2eRecords = 100_000

type want struct {
	key, value []byte
	headers    int
}

func wantRecord(i int) want {
	return want{key: []byte(fmt.Sprintf("key-%d", i%977)), value: []byte(fmt.Sprintf("value-%08d-%s", i, bytes.Repeat([]byte{'x'}, i%64))), headers: i % 3}
}

// TestSingleNodeEndToEnd produces 100,000 records through the client library
// to a real broker process, reads them back, kills the broker with SIGKILL,
// restarts it on the same data dir and reads them back again; then produces
// more and stops it cleanly with SIGTERM.
func TestSingleNodeEndToEnd(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	c := newClient(t, b.APIAddr)
	if _, err := c.Admin().CreateTopic(ctx, "e2e", 4, 1, map[string]string{"segment.bytes": "1048576"}); err != nil {
		t.Fatal(err)
	}
	acked := produce(t, ctx, c, 0, e2eRecords)
	checkLog(t, ctx, c, acked)
	c.Close()

	b.kill(t) // SIGKILL: no shutdown, no final fsync
	b = startBroker(t, dir)
	c = newClient(t, b.APIAddr)
	checkLog(t, ctx, c, acked)

	more := produce(t, ctx, c, e2eRecords, 1000)
	for k, v := range more {
		acked[k] = v
	}
	checkLog(t, ctx, c, acked)
	c.Close()
	b.stop(t)

	b = startBroker(t, dir)
	c = newClient(t, b.APIAddr)
	defer c.Close()
	checkLog(t, ctx, c, acked)
}

type pos struct {
	partition int32
	offset    int64
}

func newClient(t *testing.T, addr string) *client.Client {
	t.Helper()
	c, err := client.New([]string{addr})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// produce sends records [from, from+n) asynchronously and returns where each
// acknowledged one landed; any failure fails the test.
func produce(t *testing.T, ctx context.Context, c *client.Client, from, n int) map[pos]int {
	t.Helper()
	p := c.NewProducer(client.Linger(2 * time.Millisecond))
	var mu sync.Mutex
	acked := make(map[pos]int, n)
	var firstErr error
	for i := from; i < from+n; i++ {
		w := wantRecord(i)
		r := &client.Record{Topic: "e2e", Key: w.key, Value: w.value}
		for h := 0; h < w.headers; h++ {
			r.Headers = append(r.Headers, record.Header{Key: fmt.Sprintf("h%d", h), Value: []byte("v")})
		}
		p.Produce(ctx, r, func(r *client.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			acked[pos{r.Partition, r.Offset}] = i
		})
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	if len(acked) != n {
		t.Fatalf("%d of %d records acknowledged at distinct offsets", len(acked), n)
	}
	return acked
}

// checkLog reads every partition from the start and checks that the log
// holds exactly the acknowledged records at their acknowledged offsets.
func checkLog(t *testing.T, ctx context.Context, c *client.Client, acked map[pos]int) {
	t.Helper()
	cs, err := c.NewConsumer("e2e", client.StartAt(client.Earliest()))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	seen := 0
	for seen < len(acked) {
		recs, err := cs.Poll(ctx)
		if err != nil {
			t.Fatalf("poll after %d records: %v", seen, err)
		}
		for _, r := range recs {
			i, ok := acked[pos{r.Partition, r.Offset}]
			if !ok {
				t.Fatalf("record at %d/%d was never acknowledged", r.Partition, r.Offset)
			}
			w := wantRecord(i)
			if !bytes.Equal(r.Key, w.key) || !bytes.Equal(r.Value, w.value) || len(r.Headers) != w.headers {
				t.Fatalf("record at %d/%d: key %q value %q headers %d, want record %d", r.Partition, r.Offset, r.Key, r.Value, len(r.Headers), i)
			}
			seen++
		}
	}
	if seen != len(acked) {
		t.Fatalf("read %d records, %d acknowledged", seen, len(acked))
	}
}
