package main

// delete-records and consume --reset against a real in-process broker.

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stratalog/strata/internal/brokertest"
)

func TestCLIDeleteRecordsAndReset(t *testing.T) {
	addr := brokertest.Start(t)
	runCLI(t, addr, "", "topic", "create", "dr", "-p", "2").ok(t)
	runCLI(t, addr, "v0\nv1\nv2\nv3\nv4\n", "produce", "dr", "--partition", "0").ok(t)
	runCLI(t, addr, "w0\nw1\nw2\n", "produce", "dr", "--partition", "1").ok(t)

	r := runCLI(t, addr, "", "topic", "delete-records", "dr/0", "--before", "3").ok(t)
	if want := "TOPIC  PARTITION  NEW-LOG-START\ndr     0          3\n"; r.stdout != want {
		t.Errorf("delete-records table:\n%s\nwant:\n%s", r.stdout, want)
	}
	r = runCLI(t, addr, "", "topic", "describe", "dr", "-o", "json").ok(t)
	var desc topicDescJSON
	if err := json.Unmarshal([]byte(r.stdout), &desc); err != nil || desc.Partitions[0].LogStartOffset != 3 || desc.Partitions[1].LogStartOffset != 0 {
		t.Errorf("describe after delete-records: %q %v", r.stdout, err)
	}

	// The three reset policies, from a deleted position.
	r = runCLI(t, addr, "", "consume", "dr", "--partition", "0", "--offset", "0", "-n", "2").ok(t)
	if r.stdout != "v3\nv4\n" || r.stderr != "strata: dr/0: offset 0 is not stored; reset to 3 (--reset earliest)\n" {
		t.Errorf("--reset earliest: stdout %q, stderr %q", r.stdout, r.stderr)
	}
	r = runCLI(t, addr, "", "consume", "dr", "--partition", "0", "--offset", "1", "--reset", "latest", "--timeout", "500ms").ok(t)
	if r.stdout != "" || r.stderr != "strata: dr/0: offset 1 is not stored; reset to 5 (--reset latest)\n" {
		t.Errorf("--reset latest: stdout %q, stderr %q", r.stdout, r.stderr)
	}
	r = runCLI(t, addr, "", "consume", "dr", "--partition", "0", "--offset", "0", "--reset", "none", "--timeout", "2s")
	if r.code == 0 || r.stdout != "" || r.stderr != "strata: dr/0: offset 0 is not stored; valid offsets are 3 to 5 (reset policy none)\n" {
		t.Errorf("--reset none: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	// Every partition, up to the high watermark.
	r = runCLI(t, addr, "", "topic", "delete-records", "dr", "--before", "end", "-o", "json").ok(t)
	var starts []logStartJSON
	if err := json.Unmarshal([]byte(r.stdout), &starts); err != nil || len(starts) != 2 ||
		starts[0] != (logStartJSON{"dr", 0, 5}) || starts[1] != (logStartJSON{"dr", 1, 3}) {
		t.Errorf("delete-records --before end: %q %v", r.stdout, err)
	}
	r = runCLI(t, addr, "", "consume", "dr", "--timeout", "500ms").ok(t)
	if r.stdout != "" {
		t.Errorf("records left after deleting all: %q", r.stdout)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"topic", "delete-records", "dr/0", "--before", "99"}, "delete records dr/0: offset 99 is outside dr/0's log: valid offsets are 5 to 5"},
		{[]string{"topic", "delete-records", "dr/7", "--before", "1"}, "(list the partitions with: strata topic describe dr)"},
		{[]string{"topic", "delete-records", "nope", "--before", "1"}, `topic "nope" does not exist`},
	} {
		r := runCLI(t, addr, "", tc.args...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%q: exit %d, stderr %q, want one line with %q", tc.args, r.code, r.stderr, tc.want)
		}
	}

	runCLI(t, addr, "", "topic", "create", "imm", "-c", "immutable=true").ok(t)
	runCLI(t, addr, "kept\n", "produce", "imm").ok(t)
	r = runCLI(t, addr, "", "topic", "delete-records", "imm", "--before", "end")
	if r.code == 0 || r.stdout != "" || r.stderr != "strata: topic \"imm\" is immutable: its records are kept forever and cannot be deleted\n" {
		t.Errorf("immutable topic: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, addr, "", "consume", "imm", "-n", "1").ok(t)
	if r.stdout != "kept\n" {
		t.Errorf("immutable topic after refused delete: %q", r.stdout)
	}
}

// --reset with a position past the end, which needs no deletion.
func TestCLIConsumeResetPastEnd(t *testing.T) {
	addr := brokertest.Start(t)
	runCLI(t, addr, "", "topic", "create", "rs").ok(t)
	runCLI(t, addr, "a\nb\n", "produce", "rs").ok(t)

	r := runCLI(t, addr, "", "consume", "rs", "--offset", "9", "-n", "2").ok(t)
	if r.stdout != "a\nb\n" || r.stderr != "strata: rs/0: offset 9 is not stored; reset to 0 (--reset earliest)\n" {
		t.Errorf("--reset earliest: stdout %q, stderr %q", r.stdout, r.stderr)
	}
	r = runCLI(t, addr, "", "consume", "rs", "--offset", "9", "--reset", "end", "--timeout", "500ms").ok(t)
	if r.stdout != "" || r.stderr != "strata: rs/0: offset 9 is not stored; reset to 2 (--reset end)\n" {
		t.Errorf("--reset end: stdout %q, stderr %q", r.stdout, r.stderr)
	}
	r = runCLI(t, addr, "", "consume", "rs", "--offset", "9", "--reset", "none", "-o", "json")
	if r.code == 0 || r.stdout != "" || r.stderr != "strata: rs/0: offset 9 is not stored; valid offsets are 0 to 2 (reset policy none)\n" {
		t.Errorf("--reset none: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}
