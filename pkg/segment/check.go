package segment

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Check statuses.
const (
	CheckOK       = "ok"        // as it should be
	CheckTornTail = "torn-tail" // an unfinished write at the end of the active segment: Open cuts it
	CheckDamaged  = "damaged"   // stored data is wrong: see Detail
	CheckNote     = "note"      // nothing wrong, but worth knowing (a damage mark being refilled, leftovers)
)

// FileCheck is what Check found about one file of a log directory.
type FileCheck struct {
	File   string `json:"file"`
	Kind   string `json:"kind"` // segment, index, timeindex, start-offset, cleaner-offset, damaged-index, damaged-term, quarantine, ...
	Status string `json:"status"`
	Detail string `json:"detail,omitempty"`
	Size   int64  `json:"size"`
	// For a segment: what its whole frames hold.
	BaseOffset int64  `json:"base_offset,omitempty"`
	NextOffset int64  `json:"next_offset,omitempty"`
	FirstIndex uint64 `json:"first_index,omitempty"`
	LastIndex  uint64 `json:"last_index,omitempty"`
	// Position is where a torn tail or damage starts in the file.
	Position int64 `json:"position,omitempty"`
}

// Check reads every file of the log in dir and reports on each, without
// changing anything: for a stopped broker's offline verify (a running
// broker's Open may cut a torn tail meanwhile). Every segment is scanned
// frame by frame (CRC, framing, contiguous raft indexes and offsets, each
// segment ending where the next begins); the index files of closed
// segments are compared byte for byte with a rebuild from the scan (they
// are derived data, rebuilt whenever they look wrong, but a wrong one
// should not be there); the offset files are parsed. interval is the
// log's Options.IndexIntervalBytes (0 = the default). An error means dir
// could not be read at all.
func Check(dir string, interval int) ([]FileCheck, error) {
	if interval == 0 {
		interval = DefaultOptions().IndexIntervalBytes
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("segment: check: %w", err)
	}
	var out []FileCheck
	var bases []int64
	for _, e := range ents {
		name := e.Name()
		switch {
		case e.IsDir():
		case len(name) == 20+len(logSuffix) && strings.HasSuffix(name, logSuffix):
			if b, err := strconv.ParseInt(strings.TrimSuffix(name, logSuffix), 10, 64); err == nil && b >= 0 {
				bases = append(bases, b)
			}
		case name == startFileName || name == cleanerFileName || name == damageFileName || name == damageTermFileName:
		case strings.Contains(name, quarantineSuffix):
			out = append(out, FileCheck{File: name, Kind: "quarantine", Status: CheckNote, Size: size(e),
				Detail: "bytes recovery cut at damage, kept for an operator; deleted once the replica has fetched the range back"})
		case strings.HasSuffix(name, cleanedSuffix) || strings.HasSuffix(name, swapSuffix):
			out = append(out, FileCheck{File: name, Kind: "compaction", Status: CheckNote, Size: size(e),
				Detail: "an interrupted compaction's file: Open finishes or discards the swap"})
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	segs, checks := checkSegments(dir, bases, interval)
	out = append(checks, out...)
	var last uint64
	if n := len(segs); n > 0 {
		last = segs[n-1].lastIndex
	}
	for _, f := range []string{startFileName, cleanerFileName, damageFileName, damageTermFileName} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		c := FileCheck{File: f, Kind: f, Status: CheckOK, Size: int64(len(b))}
		v, perr := parseStartFile(b)
		switch {
		case err != nil:
			c.Status, c.Detail = CheckDamaged, err.Error()
		case perr != nil:
			c.Status, c.Detail = CheckDamaged, perr.Error()
		case f == damageFileName && uint64(v) > last:
			c.Status, c.Detail = CheckDamaged, fmt.Sprintf("the log lost acknowledged entries %d..%d to damage; its replica abstains from votes until it has fetched them back", last+1, v)
		case f == damageFileName:
			c.Status, c.Detail = CheckNote, fmt.Sprintf("damage mark at raft index %d, refilled (the log reaches %d); the next start clears it", v, last)
		case f == damageTermFileName:
			c.Detail = fmt.Sprintf("raft term %d of the damage mark's entry", v)
		default:
			c.Detail = fmt.Sprintf("offset %d", v)
		}
		out = append(out, c)
	}
	return out, nil
}

func size(e fs.DirEntry) int64 {
	if fi, err := e.Info(); err == nil {
		return fi.Size()
	}
	return 0
}

// checkSegments scans each segment, read-only, and returns those whose
// header is sound (with what their scan found) and a check per file.
func checkSegments(dir string, bases []int64, interval int) ([]*segment, []FileCheck) {
	var segs []*segment
	var out []FileCheck
	for i, b := range bases {
		path := segmentPath(dir, b)
		s := &segment{path: path, name: filepath.Base(path) + logSuffix, base: b, next: b}
		c := FileCheck{File: s.name, Kind: "segment", Status: CheckOK, BaseOffset: b}
		f, err := os.Open(path + logSuffix)
		if err != nil {
			c.Status, c.Detail = CheckDamaged, err.Error()
			out = append(out, c)
			continue
		}
		s.f = f
		active := i == len(bases)-1
		res, cerr, serr := checkOne(s, active, bases, i, interval)
		c.Size = s.size
		switch {
		case serr != nil:
			c.Status, c.Detail = CheckDamaged, serr.Error()
		case cerr != nil:
			c.Status, c.Position = CheckDamaged, cerr.Offset
			c.Detail = cerr.Err.Error()
		}
		if s.baseIndex != 0 {
			c.FirstIndex, c.LastIndex, c.NextOffset = s.baseIndex, res.lastIndex, res.next
			s.lastIndex, s.next = res.lastIndex, res.next
			segs = append(segs, s)
		}
		if cerr != nil && active {
			through, _, err := s.laterFrames(res.pos, s.size, res.lastIndex)
			switch {
			case err != nil:
				c.Detail += "; " + err.Error()
			case through == 0:
				c.Status = CheckTornTail
				c.Detail = fmt.Sprintf("%s; no whole frame follows: an unfinished write, which the next start cuts (%d bytes)", c.Detail, s.size-res.pos)
			default:
				c.Detail = fmt.Sprintf("%s; valid frames follow, up to raft index %d: the next start cuts entries %d..%d, keeps their bytes aside, and the replica abstains until it has fetched them back (a sole replica waits for an operator)", c.Detail, through, res.lastIndex+1, through)
			}
		} else if cerr != nil {
			c.Detail += "; in a closed segment: reads that reach it fail"
		}
		if cerr == nil && serr == nil && c.Detail == "" {
			c.Detail = fmt.Sprintf("offsets %d..%d, raft indexes %d..%d", b, res.next, s.baseIndex, res.lastIndex)
		}
		out = append(out, c)
		if !active && cerr == nil && serr == nil {
			out = append(out, checkIndexFiles(s, &res)...)
		}
		f.Close()
	}
	return segs, out
}

// checkOne reads a segment's header and scans its frames; for a closed
// segment it also checks that it ends where its successor begins.
func checkOne(s *segment, active bool, bases []int64, i, interval int) (scanResult, *CorruptionError, error) {
	fi, err := s.f.Stat()
	if err != nil {
		return scanResult{}, nil, err
	}
	s.size = fi.Size()
	var hdr [fileHeaderSize]byte
	if s.size < fileHeaderSize {
		if active {
			return scanResult{}, s.corrupt(0, "torn file header: %d bytes", s.size), nil
		}
		return scanResult{}, s.corrupt(0, "file of %d bytes, shorter than its header", s.size), nil
	}
	if _, err := s.f.ReadAt(hdr[:], 0); err != nil {
		return scanResult{}, nil, err
	}
	base, baseIndex, err := parseFileHeader(hdr[:])
	if err == nil && base != s.base {
		err = fmt.Errorf("file header says base offset %d", base)
	}
	if err != nil {
		return scanResult{}, s.corrupt(0, "%v", err), nil
	}
	s.baseIndex = baseIndex
	lim := scanLimits{end: s.size}
	var succ *segment
	if !active {
		lim.nextOffset = bases[i+1]
		succ = &segment{base: bases[i+1]}
	}
	res, cerr, err := s.scan(interval, lim)
	if err != nil || cerr != nil {
		return res, cerr, err
	}
	if succ != nil && res.next != succ.base {
		return res, s.corrupt(res.pos, "segment ends at offset %d, the next begins at %d", res.next, succ.base), nil
	}
	return res, nil, nil
}

// checkIndexFiles compares a closed segment's index files with a rebuild.
func checkIndexFiles(s *segment, res *scanResult) []FileCheck {
	res.finish(s.rel(res.next))
	var out []FileCheck
	for _, f := range []struct {
		suffix, kind string
		want         []byte
	}{
		{indexSuffix, "index", encodeIndex(res.index)},
		{timeIndexSuffix, "timeindex", encodeTimes(res.times)},
	} {
		name := filepath.Base(s.path) + f.suffix
		c := FileCheck{File: name, Kind: f.kind, Status: CheckOK}
		b, err := os.ReadFile(s.path + f.suffix)
		c.Size = int64(len(b))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			c.Status, c.Detail = CheckNote, "missing: the next start rebuilds it from the segment"
		case err != nil:
			c.Status, c.Detail = CheckDamaged, err.Error()
		case !bytes.Equal(b, f.want):
			c.Status, c.Detail = CheckDamaged, fmt.Sprintf("differs from a rebuild from the segment (%d bytes, rebuilt %d): derived data; delete it and the next start rebuilds it", len(b), len(f.want))
		}
		out = append(out, c)
	}
	return out
}
