package main

import (
	"fmt"
	"os"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
	"go.uber.org/goleak"

	"github.com/stratalog/strata/internal/brokertest"
)

// The commands run in-process in most tests; every goroutine they start
// (stdin reader, progress line, producers) must be gone when they return.
// The scripts of script_test.go run `strata` as a separate process: the
// test binary, re-executed as it (testscript.Main).
func TestMain(m *testing.M) {
	testscript.Main(leakChecked{m}, map[string]func(){"strata": main})
}

// leakChecked runs the tests, then fails them if goroutines leaked, as
// goleak.VerifyTestMain would (testscript.Main needs to call Run itself).
type leakChecked struct{ m *testing.M }

func (l leakChecked) Run() int {
	code := l.m.Run()
	if code == 0 {
		if err := goleak.Find(brokertest.LeakOptions()...); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			return 1
		}
	}
	return code
}
