package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stratalog/strata/internal/brokertest"
)

// bench consume reads exactly --records, and with fewer available warns
// and stops after --idle, reporting what it read.
func TestCLIBenchConsumeCounts(t *testing.T) {
	addr := brokertest.Start(t)
	r := runCLI(t, addr, "", "bench", "produce", "--topic", "bc", "--records", "3000", "--partitions", "2").ok(t)
	if !strings.HasPrefix(r.stdout, "produced 3000 records in ") || r.stderr != "created topic \"bc\" with 2 partitions\n" {
		t.Fatalf("bench produce: %q %q", r.stdout, r.stderr)
	}
	r = runCLI(t, addr, "", "bench", "consume", "--topic", "bc", "--records", "10", "-o", "json").ok(t)
	var bj benchJSON
	if err := json.Unmarshal([]byte(r.stdout), &bj); err != nil || bj.Records != 10 || r.stderr != "" {
		t.Errorf("--records 10: %q %q %v", r.stdout, r.stderr, err)
	}
	r = runCLI(t, addr, "", "bench", "consume", "--topic", "bc", "--records", "1").ok(t)
	if !strings.HasPrefix(r.stdout, "consumed 1 record in ") {
		t.Errorf("--records 1: %q", r.stdout)
	}
	r = runCLI(t, addr, "", "bench", "consume", "--topic", "bc", "--records", "5000", "--idle", "300ms", "-o", "json").ok(t)
	if err := json.Unmarshal([]byte(r.stdout), &bj); err != nil || bj.Records != 3000 || bj.RecordsPerSec <= 0 ||
		r.stderr != "strata: warning: no record for 300ms (--idle); the topic holds fewer records than asked from --offset start: consumed 3000 of 5000 records\n" {
		t.Errorf("fewer than --records: %q %q %v", r.stdout, r.stderr, err)
	}
	r = runCLI(t, addr, "", "bench", "consume", "--topic", "bc", "--records", "5", "--offset", "end", "--idle", "200ms").ok(t)
	if !strings.HasPrefix(r.stdout, "consumed 0 records in ") || !strings.Contains(r.stderr, "consumed 0 of 5 records") {
		t.Errorf("nothing to read: %q %q", r.stdout, r.stderr)
	}
	for _, c := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"bench", "consume", "--topic", "bc", "--idle", "0s"}, "strata: --records, --duration and --idle must be positive (see --help)\n"},
		{[]string{"bench", "produce", "--topic", "bc", "--linger", "-1s"}, "strata: --batch-bytes and --partitions must be positive, --linger not negative (see --help)\n"},
		{[]string{"bench", "produce", "--topic", "bc", "--batch-bytes", "0"}, "strata: --batch-bytes and --partitions must be positive, --linger not negative (see --help)\n"},
		{[]string{"consume", "bc", "--partition", "-1"}, "strata: --partition -1 is negative: partitions are numbered from 0 (see --help)\n"},
	} {
		r := runCLI(t, addr, "", c.args...)
		if r.code != 1 || r.stderr != c.stderr {
			t.Errorf("%q: exit %d, stderr %q, want %q", c.args, r.code, r.stderr, c.stderr)
		}
	}
}
