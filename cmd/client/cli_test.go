package main

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"
)

// Typos, missing arguments and --version: no broker is needed, so the
// address is one nothing listens on.
func TestCLITyposAndMissingArguments(t *testing.T) {
	for _, c := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"topic", "lst"}, "strata: unknown command \"lst\" for \"strata topic\" (did you mean \"list\"?)\n" +
			"usage: strata topic COMMAND (see: strata topic --help)\n"},
		{[]string{"topc", "list"}, "strata: unknown command \"topc\" for \"strata\" (did you mean \"topic\"?)\n" +
			"usage: strata COMMAND (see: strata --help)\n"},
		{[]string{"topic", "de"}, "strata: unknown command \"de\" for \"strata topic\" (did you mean \"delete\", \"delete-records\" or \"describe\"?)\n" +
			"usage: strata topic COMMAND (see: strata topic --help)\n"},
		{[]string{"frobnicate"}, "strata: unknown command \"frobnicate\" for \"strata\"\nusage: strata COMMAND (see: strata --help)\n"},
		{[]string{"produce"}, "strata: produce needs a topic: strata produce TOPIC\n" +
			"usage: strata produce TOPIC [flags] (see: strata produce --help)\n"},
		{[]string{"produce", "a", "b"}, "strata: produce takes a topic, got 2 arguments (\"a\" \"b\"): strata produce TOPIC\n" +
			"usage: strata produce TOPIC [flags] (see: strata produce --help)\n"},
		{[]string{"consume"}, "strata: consume needs a topic: strata consume TOPIC...\n" +
			"usage: strata consume TOPIC... [flags] (see: strata consume --help)\n"},
		{[]string{"topic", "list", "x"}, "strata: topic list takes no arguments, got \"x\"\n" +
			"usage: strata topic list [flags] (see: strata topic list --help)\n"},
		{[]string{"group", "describe"}, "strata: group describe needs a group: strata group describe GROUP\n" +
			"usage: strata group describe GROUP [flags] (see: strata group describe --help)\n"},
		{[]string{"partition", "move"}, "strata: partition move needs a partition, as TOPIC/PARTITION: strata partition move TOPIC/PARTITION\n" +
			"usage: strata partition move TOPIC/PARTITION [flags] (see: strata partition move --help)\n"},
	} {
		r := runCLI(t, "127.0.0.1:1", "", c.args...)
		if r.code != 1 || r.stdout != "" || r.stderr != c.stderr {
			t.Errorf("%q: exit %d, stdout %q, stderr:\n%s\nwant exit 1, stderr:\n%s", c.args, r.code, r.stdout, r.stderr, c.stderr)
		}
	}

	// A group with no subcommand asks for its help: exit 0.
	r := runCLI(t, "127.0.0.1:1", "", "topic").ok(t)
	if !strings.Contains(r.stdout, "Available Commands:") || r.stderr != "" {
		t.Errorf("strata topic: stdout %q, stderr %q", r.stdout, r.stderr)
	}
}

func TestCLIVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		r := runCLI(t, "127.0.0.1:1", "", args...).ok(t)
		if !strings.HasPrefix(r.stdout, "strata ") || !strings.Contains(r.stdout, runtime.Version()) || strings.Count(r.stdout, "\n") != 1 || r.stderr != "" {
			t.Errorf("%q: stdout %q, stderr %q", args, r.stdout, r.stderr)
		}
	}
	r := runCLI(t, "127.0.0.1:1", "", "version", "-o", "json").ok(t)
	var v versionJSON
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.Version == "" || v.GoVersion != runtime.Version() || v.Platform != runtime.GOOS+"/"+runtime.GOARCH {
		t.Errorf("version -o json: %q %v", r.stdout, err)
	}
}

// oneErrorLine: stderr is one error line, followed by the usage line
// for a syntax error (an unknown command or flag, a missing argument).
func oneErrorLine(stderr string) bool {
	lines := strings.SplitAfter(stderr, "\n")
	switch {
	case len(lines) == 2 && lines[1] == "":
		return strings.HasPrefix(lines[0], "strata: ")
	case len(lines) == 3 && lines[2] == "":
		return strings.HasPrefix(lines[0], "strata: ") && strings.HasPrefix(lines[1], "usage: strata ")
	}
	return false
}
