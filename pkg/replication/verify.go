package replication

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc64"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/stratalog/strata/pkg/segment"
)

// VerifyDir checks a partition replica's directory offline, changing
// nothing: its segment log (segment.Check) and its raft snapshots (each
// one's meta, its state file's CRC-64 as raft's file snapshot store keeps
// it, its encoding, and whether the log covers it), plus a leftover install
// marker and a staged log copy (noted, not checked). Meant for `strata-broker verify` on a stopped broker. An error
// means dir could not be read.
func VerifyDir(dir string) ([]segment.FileCheck, error) {
	checks, err := segment.Check(dir, 0)
	if err != nil {
		return nil, err
	}
	var first, last uint64
	var next int64
	for _, c := range checks {
		if c.Kind != "segment" || c.FirstIndex == 0 {
			continue
		}
		if first == 0 {
			first = c.FirstIndex
		}
		last, next = c.LastIndex, c.NextOffset
	}
	if _, err := os.Stat(filepath.Join(dir, installMarker)); err == nil {
		checks = append(checks, segment.FileCheck{File: installMarker, Kind: "install-marker", Status: segment.CheckNote,
			Detail: "a snapshot install was cut short: the next start discards the partial copy and the leader installs again"})
	}
	if fi, err := os.Stat(filepath.Join(dir, copyDirName)); err == nil && fi.IsDir() {
		// Not this replica's log and nothing acknowledged: a copy of the
		// leader's, checked as it is used (logcopy.go).
		checks = append(checks, segment.FileCheck{File: copyDirName, Kind: "log-copy", Status: segment.CheckNote,
			Detail: "a staged copy of the leader's log for a snapshot install: the next install resumes it or discards it"})
	}
	snapDir := filepath.Join(dir, "snapshots")
	ents, err := os.ReadDir(snapDir)
	if errors.Is(err, fs.ErrNotExist) {
		return checks, nil
	}
	if err != nil {
		return nil, fmt.Errorf("replication: verify: %w", err)
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		c := checkSnapshot(filepath.Join(snapDir, e.Name()), first, last, next)
		c.File = filepath.Join("snapshots", e.Name())
		checks = append(checks, c)
	}
	return checks, nil
}

// snapshotMeta is the part of raft's meta.json (its fileSnapshotMeta) that
// the check needs.
type snapshotMeta struct {
	ID          string
	Index, Term uint64
	Size        int64
	CRC         []byte
}

// checkSnapshot checks one snapshot directory against a log holding raft
// indexes first..last and offsets up to next.
func checkSnapshot(path string, first, last uint64, next int64) segment.FileCheck {
	c := segment.FileCheck{Kind: "snapshot", Status: segment.CheckOK}
	damaged := func(format string, args ...any) segment.FileCheck {
		c.Status = segment.CheckDamaged
		c.Detail = fmt.Sprintf(format, args...) + "; the next start drops it (raft starts from another, or it is rebuilt from the log)"
		return c
	}
	if strings.HasSuffix(path, ".tmp") {
		c.Status, c.Detail = segment.CheckNote, "an unfinished snapshot: raft ignores it"
		return c
	}
	mb, err := os.ReadFile(filepath.Join(path, "meta.json"))
	if err != nil {
		return damaged("meta: %v", err)
	}
	var m snapshotMeta
	if err := json.Unmarshal(mb, &m); err != nil {
		return damaged("meta: %v", err)
	}
	state, err := os.ReadFile(filepath.Join(path, "state.bin"))
	c.Size = int64(len(state))
	if err != nil {
		return damaged("state: %v", err)
	}
	h := crc64.New(crc64.MakeTable(crc64.ECMA))
	h.Write(state)
	if !bytes.Equal(h.Sum(nil), m.CRC) {
		return damaged("state fails its CRC-64")
	}
	s, err := decodeSnapshot(state)
	if err != nil {
		return damaged("state: %v", err)
	}
	c.LastIndex = m.Index
	c.Detail = fmt.Sprintf("raft index %d term %d, high watermark %d, log start %d", m.Index, m.Term, s.hwm, s.logStart)
	switch {
	case m.Index > last:
		c.Status = segment.CheckNote
		c.Detail += fmt.Sprintf("; beyond the log's last index %d: the next start drops it", last)
	case first > 0 && m.Index+1 < first:
		c.Status = segment.CheckNote
		c.Detail += fmt.Sprintf("; below the log's first index %d: unusable, the next start drops it", first)
	case s.hwm > next:
		c.Status = segment.CheckNote
		c.Detail += fmt.Sprintf("; high watermark beyond the log end %d: the next start drops it", next)
	}
	return c
}
