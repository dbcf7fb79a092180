package broker_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/stratalog/strata/internal/brokertest"
)

// TestRoutineOperationsLogNoErrors: operators page on errors, so routine
// operations must not log any. Three brokers create a topic of some
// hundreds of partitions (leaders replicate to peers that have not opened
// the groups yet), one broker stops cleanly and comes back (its peers'
// groups fail RPCs to it meanwhile), and all stop cleanly one after the
// other. Nothing may be logged at error level; a peer's absence is told
// once when it goes and once when it is back, not once per raft group or
// retry.
func TestRoutineOperationsLogNoErrors(t *testing.T) {
	const partitions = 300
	obs, logs := observer.New(zapcore.WarnLevel)
	cl := brokertest.StartObservedCluster(t, 3, obs)
	c := newClient(t, cl.APIAddrs())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := c.Admin().CreateTopic(ctx, "many", partitions, 3, nil); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, c, "many")

	cl.Stop(3)
	eventually(t, "every partition led by a broker that is up", func() bool {
		d, err := c.Admin().DescribeTopic(ctx, "many")
		if err != nil {
			return false
		}
		for _, p := range d.Partitions {
			if p.Leader == 0 || p.Leader == 3 {
				return false
			}
		}
		return true
	})
	cl.Restart(3)
	waitHealthy(t, c, "many")
	c.Close()
	for id := uint32(1); id <= 3; id++ {
		cl.Stop(id)
	}

	if errs := logs.FilterLevelExact(zapcore.ErrorLevel); errs.Len() > 0 {
		t.Errorf("%d entries logged at error level by routine operations; the first ones:\n%s", errs.Len(), describe(errs.All(), 10))
	}
	// Each broker saw broker 3 go and come back, then its peers stop: a
	// handful of lines about each peer from raft and its transport, not
	// one per group or retry. (The broker's own per-partition warnings,
	// such as a leadership hand-back abandoned under load, are not this
	// test's business.)
	const maxSame = 10
	same := map[string]int{}
	for _, e := range logs.All() {
		if strings.Contains(e.LoggerName, "raft") {
			same[e.LoggerName+": "+e.Message]++
		}
	}
	for k, n := range same {
		if n > maxSame {
			t.Errorf("%q logged %d times (more than %d): one line per group or per retry", k, n, maxSame)
		}
	}
	if n := logs.FilterMessageSnippet("peer unreachable").Len(); n == 0 {
		t.Error("no broker reported a stopped peer unreachable")
	}
	if t.Failed() {
		t.Logf("every warning and error:\n%s", describe(logs.All(), 200))
	}
}

// describe prints up to n log entries, one a line.
func describe(es []observer.LoggedEntry, n int) string {
	sort.SliceStable(es, func(i, j int) bool { return es[i].Time.Before(es[j].Time) })
	var b strings.Builder
	for i, e := range es {
		if i == n {
			fmt.Fprintf(&b, "... and %d more\n", len(es)-n)
			break
		}
		fmt.Fprintf(&b, "%s %s %s: %s %v\n", e.Time.Format("15:04:05.000"), e.Level, e.LoggerName, e.Message, e.ContextMap())
	}
	return b.String()
}
