package main

import (
	"os"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/stratalog/strata/internal/brokertest"
)

// TestScripts runs the CLI as a user does, one script per file in
// testdata/script: each line is a command (`strata ...` runs this
// package's binary as a separate process, against a real broker started
// for the test, STRATA_BROKERS pointing at it); `stdout`, `stderr` and `!`
// assert what it printed and how it exited. Scripts share the broker, so
// each uses its own topic and group names. Add a case by adding a file;
// see https://pkg.go.dev/github.com/rogpeppe/go-internal/testscript for
// the commands.
func TestScripts(t *testing.T) {
	addr := brokertest.Start(t)
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("STRATA_BROKERS", addr)
			env.Setenv("GORACE", noRaceExitSleep())
			return nil
		},
	})
}

// noRaceExitSleep is GORACE for the commands: under -race a binary sleeps
// atexit_sleep_ms (1 s by default) before it exits, a second for every
// `exec strata` in every script. The caller's other GORACE options stay.
func noRaceExitSleep() string {
	return strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
}
