package replication

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"reflect"
	"testing"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"

	"github.com/stratalog/strata/pkg/producers"
	"github.com/stratalog/strata/pkg/segment"
)

func TestSnapshotFormat(t *testing.T) {
	st := producers.New(producers.DefaultExpiry)
	st.Apply(producers.Batch{Producer: 3, FirstSeq: 0, Count: 2, Base: 10, Last: 11, MaxTimestamp: 5})
	prod := st.Encode()
	s := fsmSnapshot{hwm: 4242, applied: 77, logStart: 17, compact: CompactionTarget{UpTo: 4000, NowMs: 99, DeleteRetentionMs: 5}, producers: prod}
	b := s.encode()
	if len(b) != snapshotSizeV2+len(prod) {
		t.Fatalf("%d bytes, want %d", len(b), snapshotSizeV2+len(prod))
	}
	got, err := decodeSnapshot(b)
	if err != nil || !reflect.DeepEqual(got, s) {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	// A version 2 snapshot (no producer state) still reads.
	v2 := bytes.Clone(b[:snapshotSizeV2])
	v2[4] = 2
	binary.BigEndian.PutUint32(v2[56:], crc32.Checksum(v2[:56], castagnoli))
	if got, err := decodeSnapshot(v2); err != nil || got.hwm != 4242 || got.producers != nil {
		t.Fatalf("version 2: %+v, %v", got, err)
	}
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 1
		if _, err := decodeSnapshot(c); !errors.Is(err, errBadSnapshot) {
			t.Fatalf("flipped bit in byte %d: %v", i, err)
		}
	}
	if _, err := decodeSnapshot(b[:20]); !errors.Is(err, errBadSnapshot) {
		t.Fatalf("short snapshot: %v", err)
	}
}

func TestFSM(t *testing.T) {
	l, err := segment.Open(t.TempDir(), segment.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s := NewLogStore(l, LogStoreOptions{SyncEachStore: true})
	logs := []*raft.Log{
		{Index: 1, Term: 1, Type: raft.LogConfiguration, Data: []byte("c")},
		{Index: 2, Term: 1, Type: raft.LogCommand, Data: testBatch(t, "a", 3, 1)},
		{Index: 3, Term: 1, Type: raft.LogCommand, Data: testBatch(t, "b", 2, 1)},
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	f := newFSM(l, s, zap.NewNop())
	ch := f.changed()
	out := f.ApplyBatch(logs)
	if out[0] != nil || out[1] != (applyResult{base: 0, last: 2}) || out[2] != (applyResult{base: 3, last: 4}) {
		t.Fatalf("responses %+v", out)
	}
	if f.highWatermark() != 5 {
		t.Fatalf("high watermark %d, want 5", f.highWatermark())
	}
	select {
	case <-ch:
	default:
		t.Fatal("Changed not closed when the high watermark moved")
	}

	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	data := snap.(*fsmSnapshot).encode()
	// At start: restored. A snapshot beyond the log end is refused.
	g := newFSM(l, s, zap.NewNop())
	if err := g.Restore(io.NopCloser(bytes.NewReader(data))); err != nil || g.highWatermark() != 5 {
		t.Fatalf("Restore: hwm %d, %v", g.highWatermark(), err)
	}
	beyond := (&fsmSnapshot{hwm: 6, applied: 9}).encode()
	if err := newFSM(l, s, zap.NewNop()).Restore(io.NopCloser(bytes.NewReader(beyond))); err == nil {
		t.Fatal("restored a snapshot beyond the log end")
	}
	// After start, a Restore is an install, which is refused.
	g.started.Store(true)
	if err := g.Restore(io.NopCloser(bytes.NewReader(data))); !errors.Is(err, ErrSnapshotInstall) || g.installs.Load() != 1 {
		t.Fatalf("install: %v, %d installs", err, g.installs.Load())
	}
}
