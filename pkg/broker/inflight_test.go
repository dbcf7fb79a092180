package broker_test

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/brokertest"
	"github.com/stratalog/strata/pkg/broker"
	"github.com/stratalog/strata/pkg/record"
)

// inflightProduce reads strata_inflight_bytes{kind="produce"}.
func inflightProduce(t *testing.T, httpAddr string) float64 {
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Error(err)
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), `strata_inflight_bytes{kind="produce"} `); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	t.Error("no strata_inflight_bytes in /metrics")
	return 0
}

// Producers that together send four times the broker's in-flight budget at
// once are slowed down, not refused and not buffered without bound: every
// request is acknowledged, and the bytes held never exceed the budget.
func TestProduceBackpressure(t *testing.T) {
	const budget = 34 << 20 // the least allowed: --max-request-bytes' minimum
	b := brokertest.StartBroker(t, func(c *broker.Config) {
		c.MaxRequestBytes = budget
		c.MaxInflightBytes = budget
	})
	api := dial(t, b.APIAddr())
	if _, err := api.CreateTopic(ctx(t), &v1.CreateTopicRequest{Name: "load", Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	// One request: four batches of 1,000 records of 1 KiB.
	recs := make([]record.Record, 1000)
	for i := range recs {
		recs[i] = record.Record{Value: bytes.Repeat([]byte{'v'}, 1024), Timestamp: time.Now()}
	}
	batch, err := record.Encode(recs, record.EncodeOptions{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1})
	if err != nil {
		t.Fatal(err)
	}
	request := bytes.Repeat(batch, 4)

	const producers, each = 16, 2 // 128 MiB at once against a 34 MiB budget
	var peak atomic.Int64
	stop := make(chan struct{})
	var watch sync.WaitGroup
	watch.Go(func() {
		for {
			peak.Store(max(peak.Load(), int64(inflightProduce(t, b.HTTPAddr()))))
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	})
	var wg sync.WaitGroup
	var acked atomic.Int64
	for p := range producers {
		wg.Go(func() {
			for range each {
				pctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				resp, err := api.Produce(pctx, &v1.ProduceRequest{Topic: "load", TimeoutMs: 60_000,
					Partitions: []*v1.ProducePartition{{Partition: int32(p % 4), Batches: request}}})
				cancel()
				if err != nil || resp.Partitions[0].Error != nil {
					t.Errorf("producer %d: %v %v", p, err, resp.GetPartitions())
					return
				}
				acked.Add(resp.Partitions[0].LastOffset - resp.Partitions[0].BaseOffset + 1)
			}
		})
	}
	wg.Wait()
	close(stop)
	watch.Wait()
	if want := int64(producers * each * 4 * 1000); acked.Load() != want {
		t.Fatalf("%d records acknowledged, want %d", acked.Load(), want)
	}
	if p := peak.Load(); p > budget || p == 0 {
		t.Fatalf("peak produce bytes in flight %d, budget %d (0: the gauge never moved)", p, budget)
	}
	t.Logf("peak produce bytes in flight %.1f MiB of a %d MiB budget", float64(peak.Load())/(1<<20), budget>>20)
}
