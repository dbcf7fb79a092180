package partition

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the write path's instruments, shared by every partition of a
// broker. A nil *Metrics records nothing.
type Metrics struct {
	CommitSeconds prometheus.Observer // submit to commit of one Append
	CommitBatches prometheus.Observer // record batches per Append
}

func (m *Metrics) observeCommit(batches int, d time.Duration) {
	if m == nil {
		return
	}
	if m.CommitSeconds != nil {
		m.CommitSeconds.Observe(d.Seconds())
	}
	if m.CommitBatches != nil {
		m.CommitBatches.Observe(float64(batches))
	}
}
