package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// report is every measurement of a comparison, and the settings that
// produced them.
type report struct {
	cfg          config
	measurements []measurement
}

// summary is one figure of one system over the runs.
type summary struct {
	Median, Min, Max float64
	Runs             int
	Cut              bool // some run was cut short by -max-time
}

func summarize(ms []measurement) (summary, bool) {
	if len(ms) == 0 {
		return summary{}, false
	}
	var vs []float64
	s := summary{Runs: len(ms)}
	for _, m := range ms {
		vs = append(vs, m.Value)
		s.Cut = s.Cut || m.cut()
	}
	slices.Sort(vs)
	s.Min, s.Max = vs[0], vs[len(vs)-1]
	if len(vs)%2 == 1 {
		s.Median = vs[len(vs)/2]
	} else {
		s.Median = (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
	}
	return s, true
}

func (r *report) pick(system string, nodes int, metric string) []measurement {
	var out []measurement
	for _, m := range r.measurements {
		if m.System == system && m.Nodes == nodes && m.Metric == metric {
			out = append(out, m)
		}
	}
	return out
}

func shapeName(n int) string {
	if n == 1 {
		return "1 node"
	}
	return fmt.Sprintf("%d nodes, RF=%d", n, n)
}

// row is one line of the table: a metric on a shape.
type row struct {
	Metric    string   `json:"metric"`
	Nodes     int      `json:"nodes"`
	Strata    *summary `json:"strata,omitempty"`
	JetStream *summary `json:"jetstream,omitempty"`
	// Ratio is Strata's median over JetStream's: above 1, Strata's figure
	// is the larger (better for MB/s, worse for latency).
	Ratio float64 `json:"ratio_strata_over_jetstream,omitempty"`
}

func (r *report) rows() []row {
	var out []row
	for _, metric := range metricOrder {
		for _, n := range r.cfg.shapes {
			rw := row{Metric: metric, Nodes: n}
			if s, ok := summarize(r.pick("Strata", n, metric)); ok {
				rw.Strata = &s
			}
			if s, ok := summarize(r.pick("JetStream", n, metric)); ok {
				rw.JetStream = &s
			}
			if rw.Strata != nil && rw.JetStream != nil && rw.JetStream.Median > 0 {
				rw.Ratio = rw.Strata.Median / rw.JetStream.Median
			}
			out = append(out, rw)
		}
	}
	return out
}

func cell(s *summary) string {
	if s == nil {
		return "-"
	}
	c := fmt.Sprintf("%s [%s–%s]", num(s.Median), num(s.Min), num(s.Max))
	if s.Cut {
		c += " *"
	}
	return c
}

func num(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func (r *report) writeTable(w io.Writer) error {
	c := r.cfg
	fmt.Fprintf(w, "Strata vs NATS JetStream: %d-byte records, median [min–max] of %d run(s) each, interleaved\n", c.size, c.runs)
	fmt.Fprintf(w, "durability: Strata --fsync always (fsync before ack); JetStream sync_interval: always. RF=3: a 1-partition topic with replication 3; an R3 stream\n")
	fmt.Fprintf(w, "pipelined: %d records (Strata Producer defaults; JetStream PublishAsync, max pending %d); one-at-a-time: %d records; consume: %d records from the start. Each bounded by %s.\n\n",
		c.records, c.jsMaxPending, c.syncRecords, c.records, c.maxTime)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "workload\tshape\tStrata\tJetStream\tStrata/JetStream")
	cut := false
	for _, rw := range r.rows() {
		ratio := "-"
		if rw.Ratio > 0 {
			ratio = fmt.Sprintf("%.2f", rw.Ratio)
		}
		cut = cut || (rw.Strata != nil && rw.Strata.Cut) || (rw.JetStream != nil && rw.JetStream.Cut)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", rw.Metric, shapeName(rw.Nodes), cell(rw.Strata), cell(rw.JetStream), ratio)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nMB/s: 10^6 bytes of record values per second. Ratio: Strata's median over JetStream's (above 1: Strata's is larger).")
	if cut {
		fmt.Fprintf(w, "* some runs hit -max-time (%s) first: their figure covers the records acknowledged or read in that time.\n", c.maxTime)
	}
	return nil
}

func (r *report) writeJSON(w io.Writer) error {
	c := r.cfg
	out := struct {
		Settings     map[string]any `json:"settings"`
		Rows         []row          `json:"rows"`
		Measurements []measurement  `json:"measurements"`
	}{
		Settings: map[string]any{
			"shapes": c.shapes, "runs": c.runs, "size": c.size, "records": c.records,
			"sync_records": c.syncRecords, "max_time": c.maxTime.String(), "js_max_pending": c.jsMaxPending,
			"durability": "strata --fsync always; jetstream sync_interval: always",
		},
		Rows:         r.rows(),
		Measurements: r.measurements,
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// String is the table, for tests and logs.
func (r *report) String() string {
	var b strings.Builder
	r.writeTable(&b)
	return b.String()
}
