package segment

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand"
	"slices"
	"testing"
	"time"

	"github.com/stratalog/strata/pkg/record"
)

// The compaction model: what the log must hold, entry by entry and record
// by record, after any sequence of appends, compactions, rolls, reopens
// and truncations. It applies the rule of compact.go to its own records in
// the plainest way (a full scan per decision), so that the cleaner's map,
// its CleanedUpTo shortcut and its swaps are checked against it.

type mrec struct {
	off        int64
	key, value []byte // nil key: null key; nil value: tombstone
}

type mentry struct {
	index, term uint64
	typ         EntryType
	raft        []byte
	base        int64
	lod         int32
	maxTs       int64
	control     bool
	recs        []mrec
}

type model struct {
	t       testing.TB
	l       *Log
	dir     string
	opts    Options
	rng     *rand.Rand
	keys    int // distinct keys
	entries []mentry
	start   int64
	next    int64
	ts      int64 // batch clock, ms
	maxUpTo int64 // highest UpTo used: truncations stay above it
	// interrupted: a run stopped part way, so the next run's removal
	// count includes what the model applies with it.
	interrupted bool
}

func newModel(t testing.TB, seed int64, o Options) *model {
	dir := t.TempDir()
	return &model{t: t, l: mustOpen(t, dir, o), dir: dir, opts: o, rng: rand.New(rand.NewSource(seed)), keys: 12, ts: 1000}
}

func (m *model) lastIndex() uint64 {
	if n := len(m.entries); n > 0 {
		return m.entries[n-1].index
	}
	return 0
}

// kvBatch encodes records (nil value = tombstone) with timestamps ts, ts+1...
func kvBatch(t testing.TB, recs []mrec, ts int64, c record.Compression) []byte {
	t.Helper()
	rs := make([]record.Record, len(recs))
	for i, r := range recs {
		rs[i] = record.Record{Key: r.key, Value: r.value, Timestamp: time.UnixMilli(ts + int64(i))}
	}
	b, err := record.Encode(rs, record.EncodeOptions{Compression: c, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// randomCodec picks a codec, gzip and lz4 rarely: their state is costly
// under -race, where sync.Pool drops what it is given at random.
func randomCodec(rng *rand.Rand) record.Compression {
	switch p := rng.Intn(20); {
	case p == 0:
		return record.Gzip
	case p == 1:
		return record.LZ4
	case p < 6:
		return record.Snappy
	case p < 10:
		return record.Zstd
	}
	return record.None
}

// markControl turns b into a control batch.
func markControl(b []byte) {
	b[22] |= 0x20 // attributes, low byte: control
	binary.BigEndian.PutUint32(b[17:], record.Checksum(b))
}

// appendRandom appends n entries in one call: mostly batches of 1 to 4
// records over a few keys, with tombstones, null keys, raft entries and
// the odd control batch, in every codec.
func (m *model) appendRandom(n int) {
	m.t.Helper()
	idx := m.l.LastIndex() + 1
	var es []Entry
	var ms []mentry
	for i := 0; i < n; i++ {
		e := Entry{Index: idx + uint64(i), Term: 1 + (idx+uint64(i))/7}
		me := mentry{index: e.Index, term: e.Term}
		switch p := m.rng.Intn(100); {
		case p < 12:
			e.Type, e.Data = EntryRaft, []byte(fmt.Sprintf("raft-%d", e.Index))
			me.raft = e.Data
		default:
			e.Type = EntryBatch
			recs := make([]mrec, 1+m.rng.Intn(4))
			for j := range recs {
				recs[j].key = []byte(fmt.Sprintf("k%d", m.rng.Intn(m.keys)))
				recs[j].value = []byte(fmt.Sprintf("v%d-%d", e.Index, j))
				switch q := m.rng.Intn(100); {
				case q < 12:
					recs[j].value = nil
				case q < 17:
					recs[j].key = nil
				}
			}
			m.ts += int64(m.rng.Intn(40))
			e.Data = kvBatch(m.t, recs, m.ts, randomCodec(m.rng))
			if p < 15 {
				markControl(e.Data)
				me.control = true
			}
			h, _ := record.ParseHeader(e.Data)
			me.lod, me.maxTs, me.recs = h.LastOffsetDelta, h.MaxTimestamp, recs
		}
		es, ms = append(es, e), append(ms, me)
	}
	bases, err := m.l.Append(es...)
	if err != nil {
		m.t.Fatal(err)
	}
	for i := range ms {
		ms[i].base = bases[i]
		for j := range ms[i].recs {
			ms[i].recs[j].off = bases[i] + int64(j)
		}
		if ms[i].typ = es[i].Type; es[i].Type == EntryBatch {
			m.next = bases[i] + int64(ms[i].lod) + 1
		}
	}
	m.entries = append(m.entries, ms...)
}

// compact runs Compact and applies the rule to the model.
func (m *model) compact(upTo, now int64, retention time.Duration) CompactStats {
	m.t.Helper()
	activeBase := int64(1 << 62)
	if segs := m.l.Segments(); len(segs) > 0 && segs[len(segs)-1].Active {
		activeBase = segs[len(segs)-1].BaseOffset
	}
	st, err := m.l.Compact(context.Background(), CompactOptions{UpTo: upTo, Now: now, DeleteRetention: retention})
	if err != nil {
		m.t.Fatalf("Compact(UpTo %d): %v", upTo, err)
	}
	upTo = min(upTo, m.next)
	m.maxUpTo = max(m.maxUpTo, upTo)
	horizon := now - retention.Milliseconds()
	latest := map[string]int64{}
	for _, e := range m.entries {
		for _, r := range e.recs {
			if !e.control && r.key != nil && r.off >= m.start && r.off < upTo {
				latest[string(r.key)] = r.off
			}
		}
	}
	removed := int64(0)
	for i := range m.entries {
		e := &m.entries[i]
		if e.control {
			continue
		}
		e.recs = slices.DeleteFunc(e.recs, func(r mrec) bool {
			gone := r.off >= m.start && r.off < upTo && r.off < activeBase && r.key != nil &&
				(latest[string(r.key)] > r.off || r.value == nil && e.maxTs < horizon)
			if gone {
				removed++
			}
			return gone
		})
	}
	if m.interrupted {
		m.interrupted = false
	} else if st.RecordsRemoved != removed {
		m.t.Fatalf("Compact(UpTo %d) removed %d records, the model %d", upTo, st.RecordsRemoved, removed)
	}
	return st
}

func (m *model) truncatePrefix(off int64) {
	m.t.Helper()
	if err := m.l.TruncatePrefix(off); err != nil {
		m.t.Fatal(err)
	}
	m.start = max(m.start, off)
	first := m.l.FirstIndex()
	m.entries = slices.DeleteFunc(m.entries, func(e mentry) bool { return e.index < first })
}

// truncateSuffix cuts after a batch entry whose end stays at or above every
// UpTo used (the caller's duty), if there is one.
func (m *model) truncateSuffix() {
	m.t.Helper()
	var cands []int
	for i, e := range m.entries {
		if e.typ == EntryBatch && e.base+int64(e.lod)+1 >= m.maxUpTo && e.base >= m.start {
			cands = append(cands, i)
		}
	}
	if len(cands) == 0 {
		return
	}
	i := cands[m.rng.Intn(len(cands))]
	e := m.entries[i]
	if err := m.l.TruncateSuffix(e.index); err != nil {
		m.t.Fatal(err)
	}
	m.entries, m.next = m.entries[:i+1], e.base+int64(e.lod)+1
}

func (m *model) reopen() {
	m.t.Helper()
	if err := m.l.Close(); err != nil {
		m.t.Fatal(err)
	}
	m.l = mustOpen(m.t, m.dir, m.opts)
	if r := m.l.RecoveryReport(); r != nil {
		m.t.Fatalf("reopen after a clean close reported %v", r)
	}
}

// check compares the log with the model: every entry by raft index, every
// record by offset through Read, and Verify.
func (m *model) check() {
	m.t.Helper()
	l := m.l
	if err := l.Verify(); err != nil {
		m.t.Fatal(err)
	}
	if l.NextOffset() != m.next || l.StartOffset() != m.start {
		m.t.Fatalf("offsets [%d, %d), model [%d, %d)", l.StartOffset(), l.NextOffset(), m.start, m.next)
	}
	if l.LastIndex() != m.lastIndex() {
		m.t.Fatalf("LastIndex %d, model %d", l.LastIndex(), m.lastIndex())
	}
	var want []mrec
	for _, e := range m.entries {
		if e.index < l.FirstIndex() {
			continue
		}
		got, err := l.ReadEntry(e.index)
		if err != nil {
			m.t.Fatalf("ReadEntry(%d): %v", e.index, err)
		}
		if got.Term != e.term || got.Type != e.typ {
			m.t.Fatalf("entry %d: term %d type %s, model %d %s", e.index, got.Term, got.Type, e.term, e.typ)
		}
		if e.typ == EntryRaft {
			if !bytes.Equal(got.Data, e.raft) {
				m.t.Fatalf("entry %d: raft data differs", e.index)
			}
			continue
		}
		h, err := record.Validate(got.Data, record.ValidateOptions{AllowControl: true, Compacted: true})
		if err != nil {
			m.t.Fatalf("entry %d: %v", e.index, err)
		}
		if h.BaseOffset != e.base || h.LastOffsetDelta != e.lod || h.MaxTimestamp != e.maxTs {
			m.t.Fatalf("entry %d: batch [%d +%d] ts %d, model [%d +%d] ts %d", e.index, h.BaseOffset, h.LastOffsetDelta, h.MaxTimestamp, e.base, e.lod, e.maxTs)
		}
		if e.control {
			continue
		}
		recs, _ := record.Decode(got.Data, record.DecodeOptions{})
		checkRecs(m.t, fmt.Sprintf("entry %d", e.index), decodedRecs(recs), e.recs)
		for _, r := range e.recs {
			if r.off >= m.start {
				want = append(want, r)
			}
		}
	}
	var got []mrec
	for _, b := range readAll(m.t, l) {
		if h, _ := record.ParseHeader(b); h.IsControl() {
			continue
		}
		recs, err := record.Decode(b, record.DecodeOptions{})
		if err != nil {
			m.t.Fatal(err)
		}
		for _, r := range decodedRecs(recs) {
			if r.off >= m.start {
				got = append(got, r)
			}
		}
	}
	checkRecs(m.t, "Read", got, want)
}

func decodedRecs(recs []record.Record) []mrec {
	out := make([]mrec, len(recs))
	for i, r := range recs {
		out[i] = mrec{off: r.Offset, key: r.Key, value: r.Value}
	}
	return out
}

func checkRecs(t testing.TB, what string, got, want []mrec) {
	t.Helper()
	same := len(got) == len(want)
	for i := 0; same && i < len(got); i++ {
		g, w := got[i], want[i]
		same = g.off == w.off && (g.key == nil) == (w.key == nil) && bytes.Equal(g.key, w.key) &&
			(g.value == nil) == (w.value == nil) && bytes.Equal(g.value, w.value)
	}
	if !same {
		t.Fatalf("%s: records\n%v\nmodel\n%v", what, got, want)
	}
}

func (r mrec) String() string {
	k, v := "null", "tombstone"
	if r.key != nil {
		k = string(r.key)
	}
	if r.value != nil {
		v = string(r.value)
	}
	return fmt.Sprintf("%d:%s=%s", r.off, k, v)
}
