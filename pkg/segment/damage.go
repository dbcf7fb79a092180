package segment

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"go.uber.org/zap"
)

// Telling a torn tail from damage.
//
// A crash can leave the end of the active segment torn: the bytes of the
// last write (never fsynced, so never acknowledged) are partly there. They
// may be cut. A bad frame with whole valid frames after it is something
// else: those later frames were written, and usually fsynced and
// acknowledged, after the bad one, so the bad one was whole once and was
// damaged since (a flipped bit, a bad sector). Cutting there would delete
// acknowledged entries.
//
// So when the scan of the active segment meets a bad frame, recovery looks
// past it for a later whole frame: a frame header whose length fits the
// file, whose raft index lies above the last good one (and not beyond what
// the remaining bytes could hold), and whose CRC matches. A CRC-32C match
// at a random position of random bytes has odds of 2^-32, and the index
// bound makes them smaller still. None found: a torn tail, cut as before.
// One found: damage. The log is still cut at the bad frame (raft needs a
// log without holes, and a replica fetches the range back from its leader)
// but not silently and not destructively:
//
//  1. the bytes from the bad frame to the file end are copied to
//     <segment>.log.damaged-<position> and fsynced (nothing is deleted: an
//     operator can put them back);
//  2. the highest raft index found in the valid frames after the damage is
//     persisted in damaged-index (12 bytes, as start-offset) before the cut,
//     and that frame's raft term in damaged-term (same format, written
//     first);
//  3. the file is cut and fsynced.
//
// DamagedThrough then reports that index until ClearDamage: the log lacks
// entries it once held, and a raft replica must not vote until it holds
// them again (see replication). A crash between the steps is safe: the
// mark is written before the cut, and a repeated copy overwrites the last.
//
// The rejected alternative: keep the valid frames after the damage in
// place and hide the bad one. The log is the raft log, whose indexes must
// be contiguous and whose every entry raft may read; a hole breaks both.

// damageFileName holds the raft index through which a damaged log once
// held entries; see DamagedThrough. Its format is start-offset's.
const damageFileName = "damaged-index"

// damageTermFileName holds the raft term of the entry at the damage mark
// (DamageMark), written before damaged-index and deleted after it. A mark
// without it (written before the file existed) has term 0: unknown.
const damageTermFileName = "damaged-term"

// quarantineSuffix: <segment>.log.damaged-<position> holds bytes cut from a
// damaged segment, from the bad frame to the old end of the file.
const quarantineSuffix = logSuffix + ".damaged-"

// Damage is what Open found and cut in the active segment when the bad
// frame was followed by valid ones (see above).
type Damage struct {
	// Cut is the first bad frame: the log was cut there.
	Cut *CorruptionError
	// Through is the highest raft index of a valid frame found after it:
	// the log held entries up to there before the damage. ThroughTerm is
	// that frame's raft term.
	Through, ThroughTerm uint64
	// Quarantine is the file holding the bytes cut.
	Quarantine string
}

// Damage returns what this Open found and cut below the tail of the
// active segment, or nil. A torn tail is not damage (see RecoveryReport).
func (l *Log) Damage() *Damage { return l.damage }

// DamagedThrough is the raft index the log reached before damage was cut
// from it (by Open, or recorded by MarkDamaged), persisted until
// ClearDamage; 0 when there was none. While LastIndex is below it, the log
// lacks entries it once held and may have acknowledged.
func (l *Log) DamagedThrough() uint64 { return l.damagedThrough.Load() }

// DamageMark is DamagedThrough and the raft term of the entry the log held
// at that index (0 if unknown: a mark written by an older version). A
// candidate whose log ends at or past (term, index), in raft's order, holds
// everything this log once did, so a damaged replica may vote for it.
func (l *Log) DamageMark() (index, term uint64) {
	l.damageMu.Lock()
	defer l.damageMu.Unlock()
	return l.damagedThrough.Load(), l.damagedTerm
}

// MarkDamaged persists that the log held entries through raft index
// through, the last of them at raft term term (0 if unknown), that it no
// longer holds (a caller about to discard a log it cannot use calls it
// first). A lower mark than the current one is ignored. Like Append, it is
// called from the writer goroutine.
func (l *Log) MarkDamaged(through, term uint64) error {
	if through <= l.damagedThrough.Load() {
		return nil
	}
	// The term first: a crash between the two leaves a term file that
	// the next mark overwrites and that no index file refers to.
	if err := writeOffsetFile(l.dir, damageTermFileName, int64(term)); err != nil {
		return err
	}
	if err := writeOffsetFile(l.dir, damageFileName, int64(through)); err != nil {
		return err
	}
	l.damageMu.Lock()
	l.damagedTerm = term
	l.damagedThrough.Store(through)
	l.damageMu.Unlock()
	return nil
}

// ClearDamage forgets the mark (the entries are back, fetched from another
// replica) and deletes the quarantined bytes. Like Append, it is called
// from the writer goroutine.
func (l *Log) ClearDamage() error {
	// The quarantined bytes first: they matter only while the mark says the
	// log lacks them, and a crash in between leaves a mark that the next
	// start finds reached and clears.
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return fmt.Errorf("segment: clear damage mark: %w", err)
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), quarantineSuffix) {
			if err := os.Remove(filepath.Join(l.dir, e.Name())); err != nil {
				l.logger.Warn("segment: cannot delete quarantined bytes", zap.String("file", e.Name()), zap.Error(err))
			}
		}
	}
	for _, name := range []string{damageFileName, damageTermFileName} {
		if err := os.Remove(filepath.Join(l.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("segment: clear damage mark: %w", err)
		}
	}
	if err := syncDir(l.dir); err != nil {
		return err
	}
	l.damageMu.Lock()
	l.damagedTerm = 0
	l.damagedThrough.Store(0)
	l.damageMu.Unlock()
	return nil
}

// readDamageMark reads damaged-index and damaged-term (0 if none).
func readDamageMark(dir string) (index, term uint64, err error) {
	v, err := readOffsetFile(dir, damageFileName)
	if err != nil || v == 0 {
		return uint64(v), 0, err
	}
	t, err := readOffsetFile(dir, damageTermFileName)
	if err != nil {
		// Only the vote for a complete candidate is lost: the replica
		// still abstains and waits to be refilled.
		return uint64(v), 0, nil
	}
	return uint64(v), uint64(t), nil
}

// laterFrames looks for whole valid frames after the bad frame at bad, up
// to end, and returns the highest raft index among them (0 if none) and
// that frame's term. after is the raft index of the last good frame before
// bad.
func (s *segment) laterFrames(bad, end int64, after uint64) (through, term uint64, err error) {
	// A frame takes at least a header, so no valid frame after bad can
	// have an index beyond this.
	maxIndex := after + uint64((end-bad)/frameHeaderSize) + 1
	var buf []byte
	for p := bad + 1; p+frameHeaderSize <= end; {
		q, found, err := s.resync(p, end, after, maxIndex)
		if err != nil || !found {
			return through, term, err
		}
		// Walk the run of valid frames that starts at q.
		for {
			h, n, ok, err := s.frameAt(q, end, &buf)
			if err != nil {
				return through, term, err
			}
			if !ok || h.index <= after || h.index > maxIndex {
				break
			}
			if h.index > through {
				through, term = h.index, h.term
			}
			q += n
		}
		p = q + 1
	}
	return through, term, nil
}

// resync returns the first position at or after from where a plausible
// frame header starts whose frame checks (frameAt).
func (s *segment) resync(from, end int64, after, maxIndex uint64) (int64, bool, error) {
	const window = 1 << 20
	buf := make([]byte, min(window, end-from))
	var scratch []byte
	for w := from; w+frameHeaderSize <= end; w += int64(len(buf)) - frameHeaderSize + 1 {
		n := min(int64(len(buf)), end-w)
		b := buf[:n]
		if _, err := s.f.ReadAt(b, w); err != nil && !errors.Is(err, io.EOF) {
			return 0, false, fmt.Errorf("read %s at %d: %w", s.name, w, err)
		}
		for i := 0; i+frameHeaderSize <= len(b); i++ {
			h := parseFrameHeader(b[i:])
			p := w + int64(i)
			if h.length > MaxEntryBytes || p+frameHeaderSize+int64(h.length) > end ||
				h.index <= after || h.index > maxIndex ||
				(h.typ != EntryBatch && h.typ != EntryRaft) || b[i+25]|b[i+26]|b[i+27] != 0 {
				continue
			}
			_, _, ok, err := s.frameAt(p, end, &scratch)
			if err != nil {
				return 0, false, err
			}
			if ok {
				return p, true, nil
			}
		}
		if w+n >= end {
			break
		}
	}
	return 0, false, nil
}

// frameAt reads the frame at pos and reports whether it is whole and its
// CRC matches, and its size.
func (s *segment) frameAt(pos, end int64, buf *[]byte) (frameHeader, int64, bool, error) {
	if end-pos < frameHeaderSize {
		return frameHeader{}, 0, false, nil
	}
	var hb [frameHeaderSize]byte
	if _, err := s.f.ReadAt(hb[:], pos); err != nil {
		return frameHeader{}, 0, false, fmt.Errorf("read %s at %d: %w", s.name, pos, err)
	}
	h := parseFrameHeader(hb[:])
	n := frameHeaderSize + int64(h.length)
	if h.length > MaxEntryBytes || pos+n > end {
		return h, 0, false, nil
	}
	if cap(*buf) < int(h.length) {
		*buf = make([]byte, h.length)
	}
	p := (*buf)[:h.length]
	if _, err := s.f.ReadAt(p, pos+frameHeaderSize); err != nil {
		return h, 0, false, fmt.Errorf("read %s at %d: %w", s.name, pos, err)
	}
	return h, n, frameCRC(hb[:], p) == h.crc, nil
}

// quarantine copies the bytes of s from pos to its end into a file next to
// it, fsynced, and returns the file's name.
func (l *Log) quarantine(s *segment, pos int64) (string, error) {
	name := fmt.Sprintf("%s%s%d", s.path, quarantineSuffix, pos)
	f, err := os.OpenFile(name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(f, io.NewSectionReader(s.f, pos, s.size-pos)); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return filepath.Base(name), syncDir(l.dir)
}
