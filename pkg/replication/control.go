package replication

import (
	"encoding/binary"
	"fmt"
)

// A control command is a raft LogCommand that is not a record batch: an
// instruction every replica applies at the same point of the log, so that
// retention and compaction act identically on all of them. It occupies no
// offsets and is never shown to consumers: StoreLogs stores it as a
// segment.EntryRaft (type LogCommand, see entry.go).
//
//	0        4     5      6                16     17         25         33         41
//	+--------+-----+------+----------------+------+----------+----------+----------+
//	| "SCTL" | ver | kind | reserved, zero | 0xFF | a        | b        | c        |
//	|        | 1   | u8   | 10 bytes       |      | i64      | i64      | i64      |
//	+--------+-----+------+----------------+------+----------+----------+----------+
//
// Byte 16 is where a record batch has its magic byte (2, checked before a
// batch reaches raft), so 0xFF there can never be a batch. Big-endian. The
// meaning of a, b and c depends on kind:
//
//	kind 1 set-log-start: a = the new log start offset (never moves back)
//	kind 2 compact:       a = compact records below this offset,
//	                      b = the leader's clock (Unix ms) when it asked,
//	                      c = delete.retention.ms for tombstones
//	kind 3 producer verdict: a batch of an idempotent producer the leader
//	                      did not store (a duplicate, or refused); a, b, c
//	                      as verdictControl (producers.go) lays them out
//
// The layout and these constants are part of the on-disk format.
const (
	controlMagic   = "SCTL"
	controlVersion = 1
	controlMarker  = 0xFF
	controlSize    = 41
)

type controlKind uint8

const (
	controlSetLogStart controlKind = 1
	controlCompact     controlKind = 2
	// controlProducerVerdict: see producers.go.
	controlProducerVerdict controlKind = 3
)

type control struct {
	kind    controlKind
	a, b, c int64
}

func (c control) encode() []byte {
	b := make([]byte, 17, controlSize)
	copy(b, controlMagic)
	b[4], b[5], b[16] = controlVersion, byte(c.kind), controlMarker
	b = binary.BigEndian.AppendUint64(b, uint64(c.a))
	b = binary.BigEndian.AppendUint64(b, uint64(c.b))
	return binary.BigEndian.AppendUint64(b, uint64(c.c))
}

// isControl reports whether a command's data is a control command rather
// than a record batch.
func isControl(d []byte) bool {
	return len(d) >= 17 && string(d[:4]) == controlMagic && d[16] == controlMarker
}

// isVerdict reports whether a command is a producer-verdict control
// command (producers.go).
func isVerdict(d []byte) bool {
	return isControl(d) && len(d) > 5 && controlKind(d[5]) == controlProducerVerdict
}

func decodeControl(d []byte) (control, error) {
	if !isControl(d) || len(d) != controlSize || d[4] != controlVersion {
		return control{}, fmt.Errorf("replication: malformed control command (%d bytes)", len(d))
	}
	c := control{
		kind: controlKind(d[5]),
		a:    int64(binary.BigEndian.Uint64(d[17:])),
		b:    int64(binary.BigEndian.Uint64(d[25:])),
		c:    int64(binary.BigEndian.Uint64(d[33:])),
	}
	switch c.kind {
	case controlSetLogStart, controlCompact, controlProducerVerdict:
	default:
		return control{}, fmt.Errorf("replication: unknown control command kind %d", c.kind)
	}
	return c, nil
}

// CompactionTarget is what the latest compact command asked for: compact
// records below UpTo, expiring tombstones older than NowMs-DeleteRetentionMs.
// A zero UpTo means none was asked.
type CompactionTarget struct {
	UpTo              int64
	NowMs             int64
	DeleteRetentionMs int64
}
