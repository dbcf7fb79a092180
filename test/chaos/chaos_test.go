package chaos

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	seedFlag    = flag.Uint64("chaos.seed", 0, "seed of the fault schedule and workloads (default: $CHAOS_SEED, else the clock)")
	secondsFlag = flag.Int("chaos.seconds", 0, "run the scenarios this long in all, in place of CI's fault counts (default: $CHAOS_SECONDS)")
	outFlag     = flag.String("chaos.out", "", "write each scenario's history, broker logs and timeline under this directory (default: $CHAOS_OUT, else the test's artifact dir)")
	faultsFlag  = flag.Int("chaos.faults", 0, "steps per scenario in place of its CI count (0: the scenario's own)")
	rateFlag    = flag.Float64("chaos.rate", 400_000, "produce workload, value bytes per second, all producers together")
)

var (
	seed   uint64
	bin    string
	binDir string
)

// TestMain prints the seed first, so every run can be replayed, and
// builds strata-broker once (without -race: the brokers run as they ship).
func TestMain(m *testing.M) {
	flag.Parse()
	seed = *seedFlag
	if s := os.Getenv("CHAOS_SEED"); seed == 0 && s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			fmt.Fprintf(os.Stderr, "CHAOS_SEED=%q: %v\n", s, err)
			os.Exit(2)
		}
		seed = v
	}
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	fmt.Printf("chaos: seed=%d\n", seed)
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	fmt.Printf("chaos: seed=%d (replay: go test ./test/chaos -chaos.seed=%d, or make chaos SEED=%d)\n", seed, seed, seed)
	os.Exit(code)
}

func seconds(t *testing.T) int {
	if *secondsFlag > 0 {
		return *secondsFlag
	}
	if s := os.Getenv("CHAOS_SECONDS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			t.Fatalf("CHAOS_SECONDS=%q: want seconds", s)
		}
		return v
	}
	return 0
}

// runScenario runs sc with the flags: CI's fault count by default, or a
// share of -chaos.seconds.
func runScenario(t *testing.T, sc Scenario, share float64) {
	if testing.Short() {
		t.Skip("starts broker processes and injects faults; skipped with -short")
	}
	if secs := seconds(t); secs > 0 {
		sc.Duration = time.Duration(share * float64(secs) * float64(time.Second))
		sc.Long = sc.Duration >= 10*time.Minute
	}
	sc.Rate = *rateFlag
	if *faultsFlag > 0 {
		sc.Faults = *faultsFlag
	}
	brokerBin(t)
	out := *outFlag
	if out == "" {
		out = os.Getenv("CHAOS_OUT")
	}
	if out == "" {
		out = t.ArtifactDir()
	} else {
		out = filepath.Join(out, fmt.Sprintf("%s-%d", sc.Name, seed))
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("chaos: %s: seed=%d, output in %s", sc.Name, seed, out)
	budget := 30 * time.Minute
	if sc.Duration > 0 {
		budget += sc.Duration
	}
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	res, err := Run(ctx, sc, Config{Seed: seed, Bin: bin, Out: out, Data: t.TempDir(), Logf: t.Logf, Render: renderTimeline})
	if err != nil {
		t.Fatalf("chaos: %s: %v (seed=%d)", sc.Name, err, seed)
	}
	t.Log(res.Summary(sc.Name, seed))
	fmt.Println(res.Summary(sc.Name, seed))
	t.Logf("chaos: %s: history %s", sc.Name, filepath.Join(out, "history.jsonl"))
	if res.First != nil {
		var bad []string
		for k, v := range res.Verdicts {
			if v != "ok" {
				bad = append(bad, k+": "+v)
			}
		}
		t.Errorf("chaos: %s: seed=%d: first counterexample: %v\nall failing checkers:\n%s\nreplay: go test ./test/chaos -run '%s' -chaos.seed=%d",
			sc.Name, seed, res.First, strings.Join(bad, "\n"), t.Name(), seed)
	}
}

// brokerBin builds strata-broker once per test binary.
func brokerBin(t *testing.T) string {
	t.Helper()
	if binDir == "" {
		dir, err := os.MkdirTemp("", "strata-chaos-bin")
		if err != nil {
			t.Fatal(err)
		}
		binDir = dir
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		bin, err = BuildBroker(ctx, dir)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	if bin == "" {
		t.Fatal("strata-broker did not build")
	}
	return bin
}

// TestChaosProcess: three brokers; kill -9 (brief, 4-10 s, sometimes
// 30 s) and SIGSTOP (under and over the heartbeat timeout) of leaders and
// followers, and restarts of every broker at once.
func TestChaosProcess(t *testing.T) {
	runScenario(t, Scenario{Name: "process", Brokers: 3, Faults: 40,
		Kinds: []weighted{{"kill", 5}, {"pause", 5}, {"restart-all", 1}}}, 0.4)
}

// TestChaosDisk: three brokers; a broker's active segment bit-flipped or
// its tail cut while it is down, among kills and restarts of all.
func TestChaosDisk(t *testing.T) {
	runScenario(t, Scenario{Name: "disk", Brokers: 3, Faults: 24,
		Kinds: []weighted{{"bitflip", 3}, {"truncate", 3}, {"kill", 1}, {"restart-all", 1}}}, 0.2)
}

// TestChaosMembership: three brokers, a fourth added and decommissioned
// while kills and pauses go on.
func TestChaosMembership(t *testing.T) {
	runScenario(t, Scenario{Name: "membership", Brokers: 3, Faults: 22, Membership: true,
		Kinds: []weighted{{"kill", 1}, {"pause", 1}}}, 0.2)
}

// TestChaosNetwork: three brokers, each in its own network namespace, on
// its own size-limited volume and with its own clock; partitions (one
// broker isolated, a minority against a majority with the test's clients
// on either side, a bridge broker seeing both sides), a full disk, a
// broker's wall clock jumping beyond the main topic's retention.ms ahead
// or behind, and kills and pauses, leaders targeted half of the time.
func TestChaosNetwork(t *testing.T) {
	runScenario(t, Scenario{Name: "network", Brokers: 3, Faults: 30, Network: true,
		Kinds: []weighted{{"isolate", 3}, {"partition", 2}, {"bridge", 2}, {"disk-full", 2}, {"clock-skew", 2}, {"kill", 2}, {"pause", 2}}}, 0.2)
}
