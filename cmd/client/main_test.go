package main

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/stratalog/strata/internal/brokertest"
)

// The commands run in-process in these tests; every goroutine they start
// (stdin reader, progress line, producers) must be gone when they return.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, brokertest.LeakOptions()...)
}
