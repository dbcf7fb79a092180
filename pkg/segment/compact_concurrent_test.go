package segment

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stratalog/strata/pkg/record"
)

// TestCompactConcurrent runs Compact in a loop on its own goroutine while
// the writer appends (rolling segments, truncating the prefix) and readers
// follow the high watermark, under -race. Properties: readers only ever
// see whole, valid batches with contiguous offset ranges; every record
// read is the one appended at its offset; and at the end each key's latest
// record is still there.
func TestCompactConcurrent(t *testing.T) {
	l := mustOpen(t, t.TempDir(), testOptions())
	defer l.Close()
	var hw atomic.Int64
	done := make(chan struct{})
	var mu sync.Mutex
	appended := map[int64]mrec{} // by offset
	lookup := func(off int64) (mrec, bool) {
		mu.Lock()
		defer mu.Unlock()
		r, ok := appended[off]
		return r, ok
	}

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			off := int64(0)
			for {
				select {
				case <-done:
					return
				default:
				}
				max := hw.Load()
				b, err := l.Read(off, max, 900)
				var oor *OutOfRangeError
				if errors.As(err, &oor) {
					off = oor.Start
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				for len(b) > 0 {
					one, h, rest, err := record.Next(b)
					if err == nil {
						_, err = record.Validate(one, record.ValidateOptions{Compacted: true})
					}
					if err == nil && (h.BaseOffset > off || h.NextOffset() <= off || h.BaseOffset >= max) {
						err = fmt.Errorf("batch [%d, %d) read at %d", h.BaseOffset, h.NextOffset(), off)
					}
					var recs []record.Record
					if err == nil {
						recs, err = record.Decode(one, record.DecodeOptions{})
					}
					for _, rec := range recs {
						if w, ok := lookup(rec.Offset); err == nil && (!ok || !bytes.Equal(w.key, rec.Key) || !bytes.Equal(w.value, rec.Value)) {
							err = fmt.Errorf("offset %d: read %q=%q, appended %v", rec.Offset, rec.Key, rec.Value, w)
						}
					}
					if err != nil {
						errs <- err
						return
					}
					off, b = h.NextOffset(), rest
				}
			}
		}()
	}
	runs := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			_, err := l.Compact(context.Background(), CompactOptions{UpTo: hw.Load()})
			if err != nil {
				errs <- err
				return
			}
			runs++
		}
	}()

	latest := map[string]int64{}
	for i := 0; i < 600; i++ {
		var recs []mrec
		for j := 0; j < 3; j++ {
			recs = append(recs, mrec{key: []byte(fmt.Sprintf("k%d", (i*3+j)%17)), value: []byte(fmt.Sprintf("v%d-%d", i, j))})
		}
		codec := []record.Compression{record.None, record.Snappy, record.Zstd}[i%3]
		if i%50 == 0 {
			codec = []record.Compression{record.Gzip, record.LZ4}[i/50%2] // gzip, lz4: costly under -race
		}
		b := kvBatch(t, recs, int64(i), codec)
		bases, err := l.Append(Entry{Index: uint64(i + 1), Term: 1, Type: EntryBatch, Data: b})
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		for j, r := range recs {
			r.off = bases[0] + int64(j)
			appended[r.off] = r
			latest[string(r.key)] = r.off
		}
		mu.Unlock()
		hw.Store(l.NextOffset())
		if i%150 == 149 {
			if err := l.TruncatePrefix(l.NextOffset() / 4); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if _, err := l.Compact(context.Background(), CompactOptions{UpTo: l.NextOffset()}); err != nil {
		t.Fatal(err)
	}
	if err := l.Verify(); err != nil {
		t.Fatal(err)
	}
	present := map[int64]bool{}
	for _, b := range readAll(t, l) {
		recs, err := record.Decode(b, record.DecodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			present[r.Offset] = true
		}
	}
	for k, off := range latest {
		if !present[off] {
			t.Fatalf("key %s: latest record at %d is gone", k, off)
		}
	}
	t.Logf("%d compaction runs during the appends", runs)
}
