package replication

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/stratalog/strata/pkg/record"
	"github.com/stratalog/strata/pkg/segment"
)

func openStore(t *testing.T, dir string, cache int) *LogStore {
	t.Helper()
	l, err := segment.Open(dir, segment.Options{MaxSegmentBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return NewLogStore(l, LogStoreOptions{SyncEachStore: true, CacheEntries: cache, CacheBytes: 1 << 20})
}

func cmd(t *testing.T, index, term uint64, records int) *raft.Log {
	return &raft.Log{Index: index, Term: term, Type: raft.LogCommand, Data: testBatch(t, "v", records, 100)}
}

func getLog(t *testing.T, s *LogStore, index uint64) raft.Log {
	t.Helper()
	var l raft.Log
	if err := s.GetLog(index, &l); err != nil {
		t.Fatalf("GetLog(%d): %v", index, err)
	}
	return l
}

func baseOffset(t *testing.T, l raft.Log) int64 {
	t.Helper()
	h, err := record.ParseHeader(l.Data)
	if err != nil {
		t.Fatal(err)
	}
	return h.BaseOffset
}

func checkIndexes(t *testing.T, s *LogStore, first, last uint64) {
	t.Helper()
	f, _ := s.FirstIndex()
	l, _ := s.LastIndex()
	if f != first || l != last {
		t.Fatalf("indexes [%d, %d], want [%d, %d]", f, l, first, last)
	}
}

func TestLogStore(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cache int
	}{{"cache", 3}, {"no cache", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir, tc.cache)
			checkIndexes(t, s, 0, 0)
			if err := s.GetLog(1, &raft.Log{}); !errors.Is(err, raft.ErrLogNotFound) {
				t.Fatalf("GetLog on empty store: %v", err)
			}
			at := time.Unix(1_700_000_000, 123)
			conf := &raft.Log{Index: 1, Term: 1, Type: raft.LogConfiguration, Data: []byte("servers"), Extensions: []byte("ext"), AppendedAt: at}
			logs := []*raft.Log{conf, cmd(t, 2, 1, 3), {Index: 3, Term: 2, Type: raft.LogNoop}, cmd(t, 4, 2, 2), cmd(t, 5, 2, 4)}
			if err := s.StoreLogs(logs); err != nil {
				t.Fatal(err)
			}
			checkIndexes(t, s, 1, 5)
			if n := s.Log().NextOffset(); n != 9 {
				t.Fatalf("NextOffset %d, want 9: raft entries take no offsets", n)
			}
			// Round trip: non-commands whole, commands as their batch with
			// the assigned base offset (rewritten in the caller's Data too).
			got := getLog(t, s, 1)
			if got.Type != raft.LogConfiguration || got.Term != 1 || string(got.Data) != "servers" || string(got.Extensions) != "ext" || !got.AppendedAt.Equal(at) {
				t.Fatalf("configuration entry came back as %+v", got)
			}
			if got := getLog(t, s, 3); got.Type != raft.LogNoop || got.Term != 2 || got.Data != nil || !got.AppendedAt.IsZero() {
				t.Fatalf("no-op came back as %+v", got)
			}
			for i, want := range map[uint64]int64{2: 0, 4: 3, 5: 5} {
				got := getLog(t, s, i)
				if got.Type != raft.LogCommand || got.Index != i || !bytes.Equal(got.Data, logs[i-1].Data) {
					t.Fatalf("entry %d came back as %+v", i, got)
				}
				if b := baseOffset(t, got); b != want {
					t.Fatalf("entry %d has base offset %d, want %d", i, b, want)
				}
			}

			// Raft's compaction (a prefix) is ignored.
			if err := s.DeleteRange(1, 3); err != nil {
				t.Fatal(err)
			}
			checkIndexes(t, s, 1, 5)
			getLog(t, s, 2)
			// Conflict resolution (a suffix) truncates; the next entries
			// take the truncated offsets.
			if err := s.DeleteRange(4, 5); err != nil {
				t.Fatal(err)
			}
			checkIndexes(t, s, 1, 3)
			if err := s.GetLog(4, &raft.Log{}); !errors.Is(err, raft.ErrLogNotFound) {
				t.Fatalf("GetLog(4) after truncation: %v", err)
			}
			if n := s.Log().NextOffset(); n != 3 {
				t.Fatalf("NextOffset %d after truncation, want 3", n)
			}
			if err := s.StoreLogs([]*raft.Log{cmd(t, 4, 3, 1), cmd(t, 5, 3, 1)}); err != nil {
				t.Fatal(err)
			}
			if got := getLog(t, s, 5); got.Term != 3 || baseOffset(t, got) != 4 {
				t.Fatalf("entry 5 after truncation: term %d, base %d", got.Term, baseOffset(t, got))
			}
			// A hole in the middle is refused; the whole log (raft's
			// compaction after an install) is kept.
			if err := s.DeleteRange(3, 4); err == nil {
				t.Fatal("DeleteRange(3, 4) in the middle succeeded")
			}
			if err := s.DeleteRange(1, 5); err != nil {
				t.Fatalf("DeleteRange of the whole log: %v", err)
			}
			checkIndexes(t, s, 1, 5)
			// Gaps are refused (indexes are contiguous).
			if err := s.StoreLogs([]*raft.Log{cmd(t, 7, 3, 1)}); err == nil {
				t.Fatal("StoreLogs with a gap succeeded")
			}

			// Reopen: the same entries from disk.
			before := make([]raft.Log, 5)
			for i := range before {
				before[i] = getLog(t, s, uint64(i+1))
			}
			s.Log().Close()
			s = openStore(t, dir, tc.cache)
			checkIndexes(t, s, 1, 5)
			for i, want := range before {
				got := getLog(t, s, uint64(i+1))
				if got.Index != want.Index || got.Term != want.Term || got.Type != want.Type || !bytes.Equal(got.Data, want.Data) || !bytes.Equal(got.Extensions, want.Extensions) {
					t.Fatalf("entry %d after reopen: %+v, want %+v", i+1, got, want)
				}
			}
		})
	}
}

func TestRaftEntryDecodeRejects(t *testing.T) {
	good := encodeRaftEntry(&raft.Log{Type: raft.LogNoop, Data: []byte("d"), Extensions: []byte("x")})
	for name, b := range map[string][]byte{
		"short":         good[:5],
		"command type":  append([]byte{byte(raft.LogCommand)}, good[1:]...),
		"unknown type":  append([]byte{99}, good[1:]...),
		"data too long": append(good[:9:9], 0, 0, 1, 0, 'd', 0, 0, 0, 0),
		"trailing":      append(bytes.Clone(good), 0),
		"cut":           good[:len(good)-1],
	} {
		if err := decodeRaftEntry(b, &raft.Log{}); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	var l raft.Log
	if err := decodeRaftEntry(good, &l); err != nil || string(l.Data) != "d" || string(l.Extensions) != "x" {
		t.Fatalf("good entry: %+v, %v", l, err)
	}
}

func TestRecentCache(t *testing.T) {
	c := newRecent(4, 250)
	var logs []*raft.Log
	for i := uint64(1); i <= 6; i++ {
		logs = append(logs, &raft.Log{Index: i, Data: make([]byte, 100)})
	}
	c.add(logs[:3])
	// 300 bytes > 250: entry 1 evicted.
	has := func(i uint64) bool { return c.get(i, &raft.Log{}) }
	if has(1) || !has(2) || !has(3) {
		t.Fatalf("window [%d, %d]", c.lo, c.hi)
	}
	c.truncateAfter(2)
	if has(3) || !has(2) {
		t.Fatalf("after truncate: window [%d, %d]", c.lo, c.hi)
	}
	c.add(logs[2:4])
	if !has(3) || !has(4) || has(2) {
		t.Fatalf("after add: window [%d, %d]", c.lo, c.hi)
	}
	c.add(logs[5:6]) // not contiguous: start over
	if has(4) || !has(6) || c.bytes != 100 {
		t.Fatalf("after gap: window [%d, %d], %d bytes", c.lo, c.hi, c.bytes)
	}
}
