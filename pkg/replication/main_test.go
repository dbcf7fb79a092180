package replication

import (
	"testing"

	"go.uber.org/goleak"
)

// hashicorp/raft never answers a future still queued in its channels when
// it shuts down: the goroutine wait started for it is left (see wait).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/stratalog/strata/pkg/replication.(*Group).wait.func1"))
}
