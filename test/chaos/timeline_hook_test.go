package chaos

import "github.com/stratalog/strata/test/chaos/timeline"

// renderTimeline draws the run's timeline picture with test/chaos/timeline.
func renderTimeline(path string, ops []TimelineOp, faults []Window) error {
	tops := make([]timeline.Op, len(ops))
	for i, o := range ops {
		tops[i] = timeline.Op{At: o.At, Latency: o.Latency, OK: o.OK, Bytes: o.Bytes}
	}
	tws := make([]timeline.Window, len(faults))
	for i, w := range faults {
		tws[i] = timeline.Window{Kind: w.Kind, Target: w.Target, Start: w.Start, End: w.End}
	}
	return timeline.Render(path, tops, tws)
}
