package docker

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/stratalog/strata/internal/brokertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, brokertest.LeakOptions()...)
}
