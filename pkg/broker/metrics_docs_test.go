package broker_test

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/brokertest"
	"github.com/stratalog/strata/pkg/broker"
)

// TestMetricsMatchDocs: every strata_ metric the broker registers is in
// docs/operations.md's metrics table, and every metric the table lists is
// registered, so the two cannot drift.
func TestMetricsMatchDocs(t *testing.T) {
	b := brokertest.StartBroker(t)
	registered := map[string]bool{}
	for _, n := range broker.MetricNames(b) {
		if strings.HasPrefix(n, "strata_") {
			registered[n] = true
		}
	}
	f, err := os.Open("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	row := regexp.MustCompile("^\\| `(strata_[a-z0-9_]+)` \\|")
	documented := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := row.FindStringSubmatch(sc.Text()); m != nil {
			documented[m[1]] = true
		}
	}
	var missing, stale []string
	for n := range registered {
		if !documented[n] {
			missing = append(missing, n)
		}
	}
	for n := range documented {
		if !registered[n] {
			stale = append(stale, n)
		}
	}
	slices.Sort(missing)
	slices.Sort(stale)
	if len(missing) > 0 || len(stale) > 0 {
		t.Fatalf("docs/operations.md's metrics table and the broker disagree:\nregistered, not in the table: %v\nin the table, not registered: %v", missing, stale)
	}
	if len(registered) < 40 {
		t.Fatalf("only %d strata_ metrics registered: the registry's list is broken", len(registered))
	}
}

// TestOperatorMetrics: the metrics an operator alerts on are exported,
// with one style of code label.
func TestOperatorMetrics(t *testing.T) {
	b := brokertest.StartBroker(t)
	c := dial(t, b.APIAddr())
	if _, err := c.CreateTopic(ctx(t), &v1.CreateTopicRequest{Name: "m", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateTopic(ctx(t), &v1.CreateTopicRequest{Name: "m", Partitions: 2}); err == nil {
		t.Fatal("second create of m succeeded")
	}
	if _, err := c.Produce(ctx(t), &v1.ProduceRequest{Topic: "m", Partitions: []*v1.ProducePartition{{Partition: 0, Batches: encode(t, "a", "b", "c")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Fetch(ctx(t), &v1.FetchRequest{Partitions: []*v1.FetchPartition{{Topic: "m", Partition: 0}}}); err != nil {
		t.Fatal(err)
	}
	// A long poll on an empty partition: 300 ms of waiting, which the
	// latency histogram must leave out.
	start := time.Now()
	if _, err := c.Fetch(ctx(t), &v1.FetchRequest{MinBytes: 1, MaxWaitMs: 300, Partitions: []*v1.FetchPartition{{Topic: "m", Partition: 1}}}); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Fatalf("the long poll returned after %v, before its 300 ms", waited)
	}
	broker.CheckHealth(b)
	resp, err := http.Get("http://" + b.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	scrape := string(body)
	for _, want := range []string{
		`strata_build_info{go_version="go`,
		`strata_broker_state{state="ready"} 1`,
		`strata_broker_state{state="starting"} 0`,
		`strata_requests_total{code="OK",method="Produce"} 1`,
		`strata_requests_total{code="TOPIC_EXISTS",method="CreateTopic"} 1`,
		`strata_topic_requests_total{code="OK",method="Produce",topic="m"} 1`,
		`strata_topic_requests_total{code="OK",method="Fetch",topic="m"} 2`,
		`strata_fetch_records_total{topic="m"} 3`,
		`strata_partition_high_watermark{partition="0",topic="m"} 3`,
		`strata_partition_in_sync_replicas{partition="1",topic="m"} 1`,
		`strata_partition_under_replicated{partition="0",topic="m"} 0`,
		`strata_cluster_offline_partitions 0`,
		`strata_cluster_brokers{state="alive"} 1`,
		`strata_data_dir_free_bytes{dir=`,
	} {
		if !strings.Contains(scrape, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
	sum := regexp.MustCompile(`strata_request_duration_seconds_sum\{code="OK",method="Fetch"\} (\S+)`).FindStringSubmatch(scrape)
	if sum == nil {
		t.Error("no Fetch latency in the scrape")
	} else if v, err := strconv.ParseFloat(sum[1], 64); err != nil || v >= 0.25 {
		t.Errorf("two fetches took %s s in the latency histogram: the 300 ms long poll was counted", sum[1])
	}
	if t.Failed() {
		t.Logf("scrape:\n%s", grepStrata(scrape))
	}
}

func grepStrata(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "strata_") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
