package replication

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// A raft log entry that is not a record batch (no-op, configuration,
// barrier) is stored as a segment.EntryRaft whose payload describes it
// whole, so that GetLog can give raft back what it stored:
//
//	0      1                  9          13          13+d       17+d
//	+------+------------------+----------+-----------+----------+-----------
//	| type | appended at      | data len | data      | ext len  | extensions
//	| u8   | unix ns i64      | u32 (d)  | d bytes   | u32 (x)  | x bytes
//	+------+------------------+----------+-----------+----------+-----------
//
// type is raft.LogType: never LogCommand, except for a control command
// (control.go), whose data is recognised by its own magic. appended
// at is 0 for a zero time. Big-endian, like the segment frame around it;
// the frame's CRC covers it. The layout and these constants are part of
// the on-disk format: changing them makes stored logs unreadable.
//
// A LogCommand is stored as a segment.EntryBatch holding raft.Log.Data (one
// record batch) and nothing else: its AppendedAt (raft uses it only for a
// metric) is not kept, and Extensions must be empty (StoreLogs refuses
// them; nothing in Strata sets them).
const raftEntryHeader = 1 + 8 + 4 // type, appended at, data len

func encodeRaftEntry(l *raft.Log) []byte {
	b := make([]byte, 0, raftEntryHeader+len(l.Data)+4+len(l.Extensions))
	b = append(b, byte(l.Type))
	var at int64
	if !l.AppendedAt.IsZero() {
		at = l.AppendedAt.UnixNano()
	}
	b = binary.BigEndian.AppendUint64(b, uint64(at))
	b = binary.BigEndian.AppendUint32(b, uint32(len(l.Data)))
	b = append(b, l.Data...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(l.Extensions)))
	return append(b, l.Extensions...)
}

// decodeRaftEntry fills l's Type, AppendedAt, Data and Extensions from a
// stored payload; Data and Extensions alias b.
func decodeRaftEntry(b []byte, l *raft.Log) error {
	if len(b) < raftEntryHeader+4 {
		return fmt.Errorf("raft entry of %d bytes, shorter than its %d-byte header", len(b), raftEntryHeader+4)
	}
	typ := raft.LogType(b[0])
	if typ > raft.LogConfiguration {
		return fmt.Errorf("raft entry of type %d", typ)
	}
	at := int64(binary.BigEndian.Uint64(b[1:]))
	d := uint64(binary.BigEndian.Uint32(b[9:]))
	if d > uint64(len(b)-raftEntryHeader-4) {
		return fmt.Errorf("raft entry data length %d beyond its %d bytes", d, len(b))
	}
	rest := b[raftEntryHeader+d:]
	x := uint64(binary.BigEndian.Uint32(rest))
	if x != uint64(len(rest)-4) {
		return fmt.Errorf("raft entry extensions length %d, %d bytes left", x, len(rest)-4)
	}
	if typ == raft.LogCommand && !isControl(b[raftEntryHeader:raftEntryHeader+d]) {
		return fmt.Errorf("raft entry of type command that is not a control command")
	}
	l.Type = typ
	l.AppendedAt = time.Time{}
	if at != 0 {
		l.AppendedAt = time.Unix(0, at)
	}
	l.Data = nilIfEmpty(b[raftEntryHeader : raftEntryHeader+d])
	l.Extensions = nilIfEmpty(rest[4:])
	return nil
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
