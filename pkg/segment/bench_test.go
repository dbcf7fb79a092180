package segment

import (
	"testing"
)

// BenchmarkAppend appends batches of 100 records of 1 KiB, one per call,
// without fsync.
func BenchmarkAppend(b *testing.B) {
	l := mustOpen(b, b.TempDir(), DefaultOptions())
	defer l.Close()
	data := batch(b, 100, 0, 1024)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := l.Append(Entry{Index: uint64(i + 1), Term: 1, Type: EntryBatch, Data: data}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendCatchUp appends what a follower stores per part of a
// catch-up AppendEntries: 8 batches of 1 MiB (1 KiB records) per call,
// without fsync.
func BenchmarkAppendCatchUp(b *testing.B) {
	opts := DefaultOptions()
	l := mustOpen(b, b.TempDir(), opts)
	defer l.Close()
	data := batch(b, 1000, 0, 1024)
	entries := make([]Entry, 8)
	b.SetBytes(int64(len(entries) * len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	index := uint64(1)
	for i := 0; i < b.N; i++ {
		for j := range entries {
			entries[j] = Entry{Index: index, Term: 1, Type: EntryBatch, Data: data}
			index++
		}
		if _, err := l.Append(entries...); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRead reads 1 MiB at a time from a 64 MiB log, from random-ish
// offsets (page cache warm).
func BenchmarkRead(b *testing.B) {
	o := DefaultOptions()
	o.MaxSegmentBytes = 16 << 20
	l := mustOpen(b, b.TempDir(), o)
	defer l.Close()
	data := batch(b, 100, 0, 1024)
	n := (64 << 20) / len(data)
	for i := 0; i < n; i++ {
		if _, err := l.Append(Entry{Index: uint64(i + 1), Term: 1, Type: EntryBatch, Data: data}); err != nil {
			b.Fatal(err)
		}
	}
	next := l.NextOffset()
	b.ReportAllocs()
	b.ResetTimer()
	var total int64
	for i := 0; i < b.N; i++ {
		off := int64(i*7919*100) % next
		out, err := l.Read(off, next, 1<<20)
		if err != nil {
			b.Fatal(err)
		}
		total += int64(len(out))
	}
	b.SetBytes(total / int64(b.N))
}
