package producers

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
)

// store plays the log: it checks b, and if new, assigns it the next
// offsets and applies it, returning the decision.
type store struct {
	st   *State
	next int64
}

func (l *store) send(b Batch) Decision {
	d := l.st.Check(b)
	if d.Verdict == Append {
		b.Base, b.Last = l.next, l.next+int64(b.Count)-1
		l.next = b.Last + 1
		l.st.Apply(b)
	}
	return d
}

func batch(id ID, epoch Epoch, seq, n int32, ts int64) Batch {
	return Batch{Producer: id, Epoch: epoch, FirstSeq: seq, Count: n, MaxTimestamp: ts}
}

func TestCheck(t *testing.T) {
	l := &store{st: New(DefaultExpiry)}
	steps := []struct {
		name string
		b    Batch
		want Verdict
		base int64 // for Duplicate
		exp  int32 // for OutOfOrder
	}{
		{"no idempotence", batch(NoID, 0, 0, 3, 1), Append, 0, 0},
		{"no idempotence, again", batch(NoID, 0, 0, 3, 1), Append, 0, 0},
		{"first batch", batch(7, 0, 0, 10, 1), Append, 0, 0},
		{"second", batch(7, 0, 10, 10, 1), Append, 0, 0},
		{"retry of the first", batch(7, 0, 0, 10, 1), Duplicate, 6, 0},
		{"retry of the second", batch(7, 0, 10, 10, 1), Duplicate, 16, 0},
		{"a gap", batch(7, 0, 25, 5, 1), OutOfOrder, 0, 20},
		{"overlap, not a retry", batch(7, 0, 15, 10, 1), OutOfOrder, 0, 20},
		{"third", batch(7, 0, 20, 1, 1), Append, 0, 0},
		{"unknown id mid-sequence", batch(8, 0, 5, 1, 1), UnknownProducer, 0, 0},
		{"unknown id from 0", batch(8, 0, 0, 1, 1), Append, 0, 0},
		{"new epoch, not from 0", batch(7, 1, 21, 1, 1), OutOfOrder, 0, 0},
		{"new epoch from 0", batch(7, 1, 0, 2, 1), Append, 0, 0},
		{"old epoch fenced", batch(7, 0, 21, 1, 1), Fenced, 0, 0},
		{"old epoch's retry fenced too", batch(7, 0, 20, 1, 1), Fenced, 0, 0},
		{"new epoch continues", batch(7, 1, 2, 2, 1), Append, 0, 0},
	}
	for _, s := range steps {
		d := l.send(s.b)
		if d.Verdict != s.want {
			t.Fatalf("%s: %v, want %v", s.name, d.Verdict, s.want)
		}
		switch d.Verdict {
		case Duplicate:
			if d.Base != s.base || d.Last != s.base+int64(s.b.Count)-1 {
				t.Fatalf("%s: duplicate of %d-%d, want %d-%d", s.name, d.Base, d.Last, s.base, s.base+int64(s.b.Count)-1)
			}
		case OutOfOrder:
			if d.Expected != s.exp {
				t.Fatalf("%s: expected %d, want %d", s.name, d.Expected, s.exp)
			}
		}
		if (d.Err() == nil) != (d.Verdict == Append || d.Verdict == Duplicate) {
			t.Fatalf("%s: %v with error %v", s.name, d.Verdict, d.Err())
		}
	}
}

// TestRemembersFive: a retry of any of the last Remembered batches is a
// duplicate; an older one is out of order (never stored twice).
func TestRemembersFive(t *testing.T) {
	l := &store{st: New(0)}
	for i := range int32(8) {
		if d := l.send(batch(1, 0, i*2, 2, 1)); d.Verdict != Append {
			t.Fatalf("batch %d: %v", i, d.Verdict)
		}
	}
	for i := range int32(8) {
		d := l.send(batch(1, 0, i*2, 2, 1))
		want := Duplicate
		if i < 8-Remembered {
			want = OutOfOrder
		}
		if d.Verdict != want {
			t.Errorf("retry of batch %d: %v, want %v", i, d.Verdict, want)
		}
		if want == Duplicate && d.Base != int64(i*2) {
			t.Errorf("retry of batch %d: offsets from %d, want %d", i, d.Base, i*2)
		}
	}
}

func TestSequenceWraps(t *testing.T) {
	l := &store{st: New(0)}
	l.send(batch(1, 0, 0, 1, 1))
	// Jump the producer near the end of the sequence space by epoch.
	l.send(batch(1, 1, 0, 1, 1))
	st := l.st.byID[1]
	st.batches[len(st.batches)-1].lastSeq = math.MaxInt32 - 3
	if d := l.send(batch(1, 1, math.MaxInt32-2, 5, 1)); d.Verdict != Append {
		t.Fatalf("batch across the wrap: %v", d.Verdict)
	}
	if got := batch(1, 1, math.MaxInt32-2, 5, 1).LastSeq(); got != 1 {
		t.Fatalf("last sequence across the wrap: %d, want 1", got)
	}
	if d := l.send(batch(1, 1, 2, 1, 1)); d.Verdict != Append {
		t.Fatalf("batch after the wrap: %v", d.Verdict)
	}
}

// TestExpiryIsBatchTime: a producer idle for the expiry, in the batches'
// own timestamps, is forgotten; wall time plays no part.
func TestExpiryIsBatchTime(t *testing.T) {
	const hour = 3600 * 1000
	l := &store{st: New(hour)}
	l.send(batch(1, 0, 0, 1, 0))
	l.send(batch(2, 0, 0, 1, hour/2))
	l.send(batch(3, 0, 0, 1, hour+hour/4)) // 1 idle for 1.25 h, 2 for 0.75 h
	if _, ok := l.st.byID[1]; ok {
		t.Fatal("producer 1, idle past the expiry, is remembered")
	}
	if _, ok := l.st.byID[2]; !ok {
		t.Fatal("producer 2, idle below the expiry, was forgotten")
	}
	if d := l.send(batch(1, 0, 1, 1, hour+hour/4)); d.Verdict != UnknownProducer {
		t.Fatalf("expired producer's next batch: %v, want unknown producer", d.Verdict)
	}
}

// TestSnapshotRebuild: a state rebuilt from a snapshot taken mid-log plus
// the batches after it decides every later batch as the live one does,
// and encodes to the same bytes. Seeded: a failure prints its seed.
func TestSnapshotRebuild(t *testing.T) {
	seed := rand.Uint64()
	r := rand.New(rand.NewPCG(seed, 0))
	live := &store{st: New(10 * 60 * 1000)}
	var snap []byte
	var after []Batch
	seqs := map[ID]int32{}
	epochs := map[ID]Epoch{}
	var ts int64
	for i := range 5000 {
		id := ID(r.IntN(20))
		if r.IntN(10) == 0 {
			id = NoID
		}
		ts += int64(r.IntN(1000))
		n := int32(1 + r.IntN(5))
		b := batch(id, epochs[id], seqs[id], n, ts)
		switch r.IntN(20) {
		case 0: // a retry of something recent
			b.FirstSeq = max(0, seqs[id]-n)
		case 1: // a new epoch
			epochs[id]++
			b.Epoch, b.FirstSeq = epochs[id], 0
		}
		d := live.send(b)
		if d.Verdict == Append && id != NoID {
			seqs[id] = AddSeq(b.FirstSeq, n)
		}
		if d.Verdict == UnknownProducer { // expired: start again
			b.FirstSeq = 0
			if d = live.send(b); d.Verdict != Append {
				t.Fatalf("seed %d: restart of an expired producer: %v", seed, d.Verdict)
			}
			seqs[id] = n
		}
		if i == 2500 {
			snap = live.st.Encode()
		}
		if i > 2500 && d.Verdict == Append {
			b.Base, b.Last = live.next-int64(n), live.next-1
			after = append(after, b)
		}
	}
	rebuilt, err := Decode(snap, 10*60*1000)
	if err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	for _, b := range after {
		rebuilt.Apply(b)
	}
	if !bytes.Equal(rebuilt.Encode(), live.st.Encode()) {
		t.Fatalf("seed %d: the rebuilt state differs from the live one", seed)
	}
	for id := range ID(20) {
		b := batch(id, epochs[id], max(0, seqs[id]-1), 1, ts)
		if a, b := live.st.Check(b), rebuilt.Check(b); a.Verdict != b.Verdict || a.Base != b.Base {
			t.Fatalf("seed %d: producer %d: live %v, rebuilt %v", seed, id, a.Verdict, b.Verdict)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	l := &store{st: New(0)}
	l.send(batch(1, 0, 0, 2, 1))
	l.send(batch(2, 0, 0, 2, 1))
	good := l.st.Encode()
	if _, err := Decode(good, 0); err != nil {
		t.Fatal(err)
	}
	for i := range good {
		bad := bytes.Clone(good)
		bad[i] ^= 0x40
		if _, err := Decode(bad, 0); err == nil {
			t.Fatalf("a flipped bit at byte %d was accepted", i)
		}
	}
	for n := range len(good) {
		if _, err := Decode(good[:n], 0); err == nil {
			t.Fatalf("cut at %d bytes was accepted", n)
		}
	}
}

// FuzzDecode: Decode never panics, and what it accepts re-encodes to the
// same bytes.
func FuzzDecode(f *testing.F) {
	l := &store{st: New(0)}
	f.Add(l.st.Encode())
	l.send(batch(1, 0, 0, 2, 1))
	l.send(batch(1, 0, 2, 2, 1))
	l.send(batch(5, 3, 0, 1, 9))
	f.Add(l.st.Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Decode(b, 0)
		if err != nil {
			return
		}
		if !bytes.Equal(s.Encode(), b) {
			t.Fatalf("decoded snapshot re-encodes differently")
		}
	})
}
