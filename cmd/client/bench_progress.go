package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Progress of a benchmark, shown two ways.
//
// On a terminal (stdout is one), a line on stdout is redrawn every
// 200 ms and erased before the report: a person watches it.
//
// Otherwise (stdout is a file or a pipe, as in CI or under nohup), one
// line a second goes to stderr, never redrawn, so that a log shows when a
// run stalled: the records so far, the records/s and MB/s of the last
// second (not of the whole run, which hides a stall behind the good
// minutes before it) and the time elapsed. stdout keeps only the report,
// so `-o json > run.json` is still one JSON document. The first line comes
// after a second: a shorter run prints none, which keeps scripts that
// compare stderr exact. --progress=false turns both kinds off.
//
// With -o json the log lines are JSON objects, one a line, marked
// "progress": true (the report has no such field, so a reader of a
// combined log tells them apart by it; a "type" field was the rejected
// alternative: the report would have needed one too, changing its shape).
const (
	progressRedraw = 200 * time.Millisecond
	progressLog    = time.Second
)

// benchProgressJSON is one progress line with -o json. Records and
// ElapsedSec count from the start; the rates cover the last interval.
type benchProgressJSON struct {
	Progress      bool    `json:"progress"` // always true
	Records       int64   `json:"records"`
	Total         int64   `json:"total"` // --records
	RecordsPerSec float64 `json:"records_per_sec"`
	MBPerSec      float64 `json:"mb_per_sec"`
	ElapsedSec    float64 `json:"elapsed_sec"`
}

// benchCount is the run's counters at one moment.
type benchCount struct {
	at      time.Time
	records int64
	bytes   int64
}

func (b *benchRun) count() benchCount {
	b.mu.Lock()
	defer b.mu.Unlock()
	return benchCount{at: time.Now(), records: b.records, bytes: b.bytes}
}

// progressLine is the log line for the interval from prev to cur of a run
// that started at start, ending in a newline.
func progressLine(jsonOut bool, start time.Time, total int64, prev, cur benchCount) string {
	p := benchProgressJSON{Progress: true, Records: cur.records, Total: total, ElapsedSec: cur.at.Sub(start).Seconds()}
	if dt := cur.at.Sub(prev.at).Seconds(); dt > 0 {
		p.RecordsPerSec = float64(cur.records-prev.records) / dt
		p.MBPerSec = float64(cur.bytes-prev.bytes) / 1e6 / dt
	}
	if jsonOut {
		line, _ := json.Marshal(p) // cannot fail: numbers and a bool; the rates are finite
		return string(line) + "\n"
	}
	return fmt.Sprintf("progress: %d/%d records, %.0f records/s, %.2f MB/s (last second), %.1fs elapsed\n",
		p.Records, p.Total, p.RecordsPerSec, p.MBPerSec, p.ElapsedSec)
}

// progress shows the run's progress until ctx ends: redrawn on a
// terminal, logged to stderr otherwise. Run it on a goroutine the caller
// waits for.
func (b *benchRun) progress(ctx context.Context) {
	if b.e.isTerminal() {
		b.redraw(ctx)
	} else {
		b.log(ctx)
	}
}

func (b *benchRun) redraw(ctx context.Context) {
	t := time.NewTicker(progressRedraw)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprint(b.e.stdout, "\r\033[K")
			return
		case <-t.C:
			r := b.report()
			fmt.Fprintf(b.e.stdout, "\r\033[K%d/%d records  %.0f records/s  %.2f MB/s  p99 %.2f ms",
				r.Records, b.total, r.RecordsPerSec, r.MBPerSec, r.P99Ms)
		}
	}
}

func (b *benchRun) log(ctx context.Context) {
	t := time.NewTicker(progressLog)
	defer t.Stop()
	prev := benchCount{at: b.start}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			cur := b.count()
			fmt.Fprint(b.e.stderr, progressLine(b.e.output == "json", b.start, b.total, prev, cur))
			prev = cur
		}
	}
}
