package main

// Issue 13's small ones: plurals, hints that fit, flag errors in the
// flag's words, group names, internal topics, describe -o json.

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stratalog/strata/internal/brokertest"
)

func TestCLISmallOnes(t *testing.T) {
	addr := brokertest.Start(t)
	r := runCLI(t, addr, "", "topic", "create", "one").ok(t)
	if r.stdout != "created topic \"one\" with 1 partition, replication factor 1\n" {
		t.Errorf("create: %q", r.stdout)
	}
	r = runCLI(t, addr, "x\n", "produce", "one").ok(t)
	if r.stderr != "produced 1 record to one\n" {
		t.Errorf("produce: %q", r.stderr)
	}

	// A missing topic where it should exist: list, don't create.
	for _, args := range [][]string{{"topic", "delete", "nosuch"}, {"topic", "describe", "nosuch"}, {"topic", "alter-config", "nosuch", "--set", "retention.ms=1"}} {
		r = runCLI(t, addr, "", args...)
		if r.code != 1 || r.stderr != "strata: topic \"nosuch\" does not exist (list the topics with: strata topic list)\n" {
			t.Errorf("%q: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}

	// Internal topics only with --internal (a group makes __consumer_offsets).
	runCLI(t, addr, "", "consume", "one", "--group", "g.1", "-n", "1").ok(t)
	r = runCLI(t, addr, "", "topic", "list").ok(t)
	if r.stdout != "NAME  PARTITIONS  REPLICAS\none   1           1\n" {
		t.Errorf("topic list:\n%s", r.stdout)
	}
	r = runCLI(t, addr, "", "topic", "list", "--internal", "-o", "json").ok(t)
	var topics []topicSummaryJSON
	if err := json.Unmarshal([]byte(r.stdout), &topics); err != nil || len(topics) != 2 || topics[0].Name != "__consumer_offsets" {
		t.Errorf("topic list --internal: %q %v", r.stdout, err)
	}

	// describe -o json: the replication factor and config sources of the table.
	runCLI(t, addr, "", "topic", "alter-config", "one", "--set", "retention.ms=60000").ok(t)
	r = runCLI(t, addr, "", "topic", "describe", "one", "-o", "json").ok(t)
	var d topicDescJSON
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil || d.ReplicationFactor != 1 ||
		d.ConfigSources["retention.ms"] != "topic" || d.ConfigSources["max.message.bytes"] != "default" || len(d.ConfigSources) != len(d.Configs) {
		t.Errorf("describe -o json: %+v %v", d, err)
	}

	for _, c := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"consume", "one", "--group", "a b/c"}, "strata: --group \"a b/c\": ' ' is not allowed; use letters, digits, '.', '_', '-' and ':' (see --help)\n"},
		{[]string{"topic", "create", "x", "-p", "abc"}, "strata: --partitions \"abc\": want a whole number\n" +
			"usage: strata topic create NAME [flags] (see: strata topic create --help)\n"},
		{[]string{"consume", "one", "--partition", "0,x"}, "strata: --partition \"0,x\": want a whole number\n" +
			"usage: strata consume TOPIC... [flags] (see: strata consume --help)\n"},
		{[]string{"topic", "list", "--timeout", "5"}, "strata: --timeout \"5\": want a duration such as 500ms, 10s or 1m30s\n" +
			"usage: strata topic list [flags] (see: strata topic list --help)\n"},
		{[]string{"topic", "list", "--timeout", "-1s"}, "strata: --timeout -1s is negative: give a duration such as 30s, or 0 for no limit (see --help)\n"},
	} {
		r := runCLI(t, addr, "", c.args...)
		if r.code != 1 || r.stderr != c.stderr || strings.Contains(r.stderr, "strconv") {
			t.Errorf("%q: exit %d, stderr %q, want %q", c.args, r.code, r.stderr, c.stderr)
		}
	}
	// --timeout 0 is no limit, not an immediate failure.
	runCLI(t, addr, "", "topic", "list", "--timeout", "0").ok(t)
}
