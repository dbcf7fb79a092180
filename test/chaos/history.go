package chaos

import (
	"bufio"
	"encoding/json"
	"os"
	"sync"
	"time"
)

// History is the run's record of operations and fault windows, written
// as JSON lines to history.jsonl: one object per operation (produce,
// append, read, commit, admin, check) and per fault window, each with
// "t" (unix nanoseconds of its start) and "kind". Any goroutine may call
// its methods.
type History struct {
	mu struct {
		sync.Mutex
		f       *os.File
		w       *bufio.Writer
		enc     *json.Encoder
		ops     []TimelineOp // acknowledged and failed produces, for the timeline
		windows []Window
		err     error
	}
}

// TimelineOp is one produce for the timeline picture: when it was sent,
// how long it took, whether it was acknowledged, and its value bytes.
type TimelineOp struct {
	At      time.Time
	Latency time.Duration
	OK      bool
	Bytes   int
}

// NewHistory creates path.
func NewHistory(path string) (*History, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	h := &History{}
	h.mu.f = f
	h.mu.w = bufio.NewWriterSize(f, 1<<20)
	h.mu.enc = json.NewEncoder(h.mu.w)
	return h, nil
}

// Log writes one event; fields are added to t and kind.
func (h *History) Log(t time.Time, kind string, fields map[string]any) {
	if fields == nil {
		fields = map[string]any{}
	}
	fields["t"] = t.UnixNano()
	fields["kind"] = kind
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.mu.enc.Encode(fields); err != nil && h.mu.err == nil {
		h.mu.err = err
	}
}

// Produce logs one produce and keeps it for the timeline.
func (h *History) Produce(invoke, complete time.Time, fields map[string]any, ok bool, bytes int) {
	fields["end"] = complete.UnixNano()
	fields["ok"] = ok
	h.Log(invoke, "produce", fields)
	h.mu.Lock()
	h.mu.ops = append(h.mu.ops, TimelineOp{At: invoke, Latency: complete.Sub(invoke), OK: ok, Bytes: bytes})
	h.mu.Unlock()
}

// Fault logs one fault window.
func (h *History) Fault(w Window, detail string, err error) {
	f := map[string]any{"fault": w.Kind, "target": w.Target, "end": w.End.UnixNano()}
	if detail != "" {
		f["detail"] = detail
	}
	if err != nil {
		f["err"] = err.Error()
	}
	h.Log(w.Start, "fault", f)
	h.mu.Lock()
	h.mu.windows = append(h.mu.windows, w)
	h.mu.Unlock()
}

// Timeline returns copies of the produces and the fault windows.
func (h *History) Timeline() ([]TimelineOp, []Window) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]TimelineOp(nil), h.mu.ops...), append([]Window(nil), h.mu.windows...)
}

// Close flushes and closes the file.
func (h *History) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.mu.w.Flush(); err != nil && h.mu.err == nil {
		h.mu.err = err
	}
	if err := h.mu.f.Close(); err != nil && h.mu.err == nil {
		h.mu.err = err
	}
	return h.mu.err
}
