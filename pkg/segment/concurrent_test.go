package segment

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stratalog/strata/pkg/record"
)

// TestConcurrentReaders runs one writer (appends that roll segments,
// prefix truncation) against readers that follow a published high
// watermark, as a partition does. Property, under -race: a reader sees
// only whole, valid batches with contiguous offsets below the watermark,
// or an out-of-range error once the start passed it.
func TestConcurrentReaders(t *testing.T) {
	l := mustOpen(t, t.TempDir(), testOptions())
	defer l.Close()
	var hw atomic.Int64
	done := make(chan struct{})
	data := make([][]byte, 50)
	for i := range data {
		data[i] = batch(t, 1+i%3, int64(i), 40)
	}

	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for r := 0; r < 3; r++ {
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
				b, err := l.Read(off, max, 700)
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
						_, err = record.Validate(one, record.ValidateOptions{})
					}
					if err == nil && (h.BaseOffset > off || h.NextOffset() <= off || h.BaseOffset >= max) {
						err = errors.New("batch out of place")
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

	idx := uint64(1)
	for round := 0; round < 400; round++ {
		e := Entry{Index: idx, Term: 1, Type: EntryBatch, Data: append([]byte(nil), data[round%len(data)]...)}
		idx++
		if _, err := l.Append(e, Entry{Index: idx, Term: 1, Type: EntryRaft}); err != nil {
			t.Fatal(err)
		}
		idx++
		hw.Store(l.NextOffset())
		if round%97 == 96 {
			if err := l.TruncatePrefix(l.NextOffset() - 20); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
