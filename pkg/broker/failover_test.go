package broker_test

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stratalog/strata/internal/brokertest"
)

// metricValue reads one unlabelled metric from a broker's /metrics.
func metricValue(t *testing.T, httpAddr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", sc.Text(), err)
			}
			return f
		}
	}
	t.Fatalf("no %s in %s/metrics", name, httpAddr)
	return 0
}

// TestEarlyElectionWhenLeaderBrokerStops: when the broker leading a
// partition goes away (its raft port then refuses connections), a
// survivor starts the election at once (strata_early_elections_total)
// rather than waiting for raft's heartbeat timeout, and the partition gets
// a leader among the survivors.
func TestEarlyElectionWhenLeaderBrokerStops(t *testing.T) {
	cl := brokertest.StartCluster(t, 3)
	c := newClient(t, cl.APIAddrs())
	if _, err := c.Admin().CreateTopic(context.Background(), "t", 1, 3, nil); err != nil {
		t.Fatal(err)
	}
	produceN(t, c, "t", "before", 10)
	old := leaderOf(t, c, "t", 0)
	cl.Stop(old)

	var survivors []string
	for id := uint32(1); id <= 3; id++ {
		if id != old {
			survivors = append(survivors, cl.Broker(id).HTTPAddr())
		}
	}
	eventually(t, "a survivor starts an early election", func() bool {
		var n float64
		for _, addr := range survivors {
			n += metricValue(t, addr, "strata_early_elections_total")
		}
		return n >= 1
	})
	if now := leaderOf(t, c, "t", 0); now == old {
		t.Fatalf("stopped broker %d still reported as leader", old)
	}
	produceN(t, c, "t", "after", 10)
}
