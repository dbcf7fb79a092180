package segment

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stratalog/strata/pkg/record"
)

// batch builds a batch of n records with timestamps ts, ts+1, ... (ms) and
// values of size valueLen.
func batch(t testing.TB, n int, ts int64, valueLen int) []byte {
	t.Helper()
	recs := make([]record.Record, n)
	for i := range recs {
		recs[i] = record.Record{
			Key:       []byte(fmt.Sprintf("k%d", i)),
			Value:     bytes.Repeat([]byte{byte(i)}, valueLen),
			Timestamp: time.UnixMilli(ts + int64(i)),
		}
	}
	b, err := record.Encode(recs, record.EncodeOptions{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fakeClock is a manual clock for roll-by-age tests.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

func testOptions() Options {
	o := DefaultOptions()
	o.MaxSegmentBytes = 4096
	o.IndexIntervalBytes = 256
	return o
}

func mustOpen(t testing.TB, dir string, o Options) *Log {
	t.Helper()
	l, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// appender tracks what a test appended: the model the log must match.
type appender struct {
	t       testing.TB
	l       *Log
	entries []Entry // every entry, Data as stored (offset rewritten)
	bases   []int64
}

func (a *appender) next() uint64 {
	if n := len(a.entries); n > 0 {
		return a.entries[n-1].Index + 1
	}
	return 1
}

// add appends one call's worth of entries of the given types (b = batch of
// records records, r = raft) with timestamp ts.
func (a *appender) add(kinds string, records int, ts int64) []int64 {
	a.t.Helper()
	var es []Entry
	idx := a.next()
	for i, k := range kinds {
		e := Entry{Index: idx + uint64(i), Term: 1 + idx/10}
		if k == 'b' {
			e.Type, e.Data = EntryBatch, batch(a.t, records, ts, 50)
		} else {
			e.Type, e.Data = EntryRaft, []byte(fmt.Sprintf("raft-%d", e.Index))
		}
		es = append(es, e)
	}
	bases, err := a.l.Append(es...)
	if err != nil {
		a.t.Fatal(err)
	}
	a.entries = append(a.entries, es...)
	a.bases = append(a.bases, bases...)
	return bases
}

// batches returns the stored batches with base offset in [from, to).
func (a *appender) batches(from, to int64) [][]byte {
	var out [][]byte
	for i, e := range a.entries {
		if e.Type == EntryBatch && a.bases[i] >= from && a.bases[i] < to {
			out = append(out, e.Data)
		}
	}
	return out
}

// truncate drops entries above index from the model.
func (a *appender) truncate(after uint64) {
	for len(a.entries) > 0 && a.entries[len(a.entries)-1].Index > after {
		a.entries = a.entries[:len(a.entries)-1]
		a.bases = a.bases[:len(a.bases)-1]
	}
}

// splitBatches splits Read output into batches.
func splitBatches(t testing.TB, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) > 0 {
		one, _, rest, err := record.Next(b)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := record.Validate(one, record.ValidateOptions{AllowControl: true, Compacted: true}); err != nil {
			t.Fatal(err)
		}
		out = append(out, one)
		b = rest
	}
	return out
}

func baseOf(t testing.TB, b []byte) int64 {
	h, err := record.ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	return h.BaseOffset
}

// readAll reads the whole visible log in small steps.
func readAll(t testing.TB, l *Log) [][]byte {
	t.Helper()
	var out [][]byte
	off := l.StartOffset()
	for off < l.NextOffset() {
		b, err := l.Read(off, l.NextOffset(), 1)
		if err != nil {
			t.Fatal(err)
		}
		bs := splitBatches(t, b)
		if len(bs) != 1 {
			t.Fatalf("Read(%d, maxBytes=1) returned %d batches", off, len(bs))
		}
		h, _ := record.ParseHeader(bs[0])
		out = append(out, bs[0])
		off = h.NextOffset()
	}
	return out
}

func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		in, err := os.Open(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(filepath.Join(dst, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		in.Close()
		out.Close()
	}
}

func isCorruption(err error) bool {
	var c *CorruptionError
	return errors.As(err, &c) && errors.Is(err, ErrCorrupt)
}
