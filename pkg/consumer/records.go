package consumer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// OffsetsTopic is the internal, compacted topic that holds every group's
// committed offsets and membership. A group lives in the partition its
// name hashes to (PartitionFor), and that partition's leader is the
// group's coordinator.
const OffsetsTopic = "__consumer_offsets"

// Records of the offsets topic. The key says what a record is about, so
// that compaction keeps the latest of each; the value is JSON (small,
// rare, and readable with `strata consume __consumer_offsets`):
//
//	offset commit   key   "o" 0x00 group 0x00 topic 0x00 partition (decimal)
//	                value {"offset":N,"metadata":"...","commit_time_ms":T,"member":"...","epoch":E}
//	group           key   "g" 0x00 group
//	                value {"epoch":E,"assignor":"uniform","members":[{...}]}   (see GroupRecord)
//
// A null value (tombstone) deletes the key: a group deleted with `strata
// group delete` leaves a tombstone for its group record and for each of
// its offsets. Group and topic names cannot hold 0x00 (topic names are
// [a-zA-Z0-9._-]; group names are checked by ValidateGroup). The layout is
// part of the on-disk format (docs/format/offsets.md).
const (
	kindOffset = 'o'
	kindGroup  = 'g'
	sep        = 0x00
)

// OffsetKey is the key of group's committed offset for topic/partition.
func OffsetKey(group, topic string, partition int32) []byte {
	b := make([]byte, 0, 4+len(group)+len(topic)+10)
	b = append(b, kindOffset, sep)
	b = append(b, group...)
	b = append(b, sep)
	b = append(b, topic...)
	b = append(b, sep)
	return strconv.AppendInt(b, int64(partition), 10)
}

// GroupKey is the key of group's membership record.
func GroupKey(group string) []byte {
	b := make([]byte, 0, 2+len(group))
	b = append(b, kindGroup, sep)
	return append(b, group...)
}

// OffsetValue is a committed offset as stored.
type OffsetValue struct {
	Offset       int64  `json:"offset"`
	Metadata     string `json:"metadata,omitempty"`
	CommitTimeMs int64  `json:"commit_time_ms"`
	Member       string `json:"member,omitempty"` // empty for an admin commit (seek)
	Epoch        int32  `json:"epoch"`
}

// GroupRecord is a group's membership as stored at its last change, so
// that a new coordinator can resume it after a failover: members get a
// fresh session timeout to heartbeat again, and keep their partitions.
type GroupRecord struct {
	Epoch    int32          `json:"epoch"`
	Assignor string         `json:"assignor"`
	Members  []MemberRecord `json:"members"`
}

// MemberRecord is one member of a GroupRecord.
type MemberRecord struct {
	ID               string   `json:"id"`
	InstanceID       string   `json:"instance_id,omitempty"`
	ClientID         string   `json:"client_id,omitempty"`
	Epoch            int32    `json:"epoch"`
	Topics           []string `json:"topics,omitempty"`
	TopicRegex       string   `json:"topic_regex,omitempty"`
	SessionTimeoutMs int32    `json:"session_timeout_ms"`
	RebalanceMs      int32    `json:"rebalance_timeout_ms"`
	// Target is the member's target assignment: topic -> partitions.
	Target map[string][]int32 `json:"target,omitempty"`
}

// Decoded is one record of the offsets topic, decoded by DecodeRecord.
type Decoded struct {
	Group     string
	Topic     string // offset records
	Partition int32  // offset records
	Offset    *OffsetValue
	Members   *GroupRecord
	Tombstone bool
}

// DecodeRecord decodes a record of the offsets topic. Records it does not
// know (a later version's) return ok=false and are skipped by the loader.
func DecodeRecord(key, value []byte) (d Decoded, ok bool, err error) {
	if len(key) < 2 || key[1] != sep {
		return d, false, nil
	}
	parts := bytes.Split(key[2:], []byte{sep})
	switch key[0] {
	case kindOffset:
		if len(parts) != 3 {
			return d, false, fmt.Errorf("consumer: offset key with %d parts", len(parts))
		}
		p, perr := strconv.ParseInt(string(parts[2]), 10, 32)
		if perr != nil || p < 0 {
			return d, false, fmt.Errorf("consumer: offset key partition %q", parts[2])
		}
		d = Decoded{Group: string(parts[0]), Topic: string(parts[1]), Partition: int32(p), Tombstone: value == nil}
		if value != nil {
			var v OffsetValue
			if err := json.Unmarshal(value, &v); err != nil {
				return d, false, fmt.Errorf("consumer: offset value: %w", err)
			}
			d.Offset = &v
		}
		return d, true, nil
	case kindGroup:
		if len(parts) != 1 {
			return d, false, fmt.Errorf("consumer: group key with %d parts", len(parts))
		}
		d = Decoded{Group: string(parts[0]), Tombstone: value == nil}
		if value != nil {
			var g GroupRecord
			if err := json.Unmarshal(value, &g); err != nil {
				return d, false, fmt.Errorf("consumer: group value: %w", err)
			}
			d.Members = &g
		}
		return d, true, nil
	}
	return d, false, nil
}

// ValidateGroup checks a group name: 1 to 249 bytes, no 0x00 or control
// characters.
func ValidateGroup(g string) error {
	if g == "" || len(g) > 249 {
		return fmt.Errorf("group name must be 1 to 249 bytes, not %d", len(g))
	}
	for _, c := range []byte(g) {
		if c < 0x20 || c == 0x7f {
			return fmt.Errorf("group name %q holds a control character", g)
		}
	}
	return nil
}

// PartitionFor is the offsets topic partition of group: FNV-1a of the
// name modulo the partition count (fixed for the topic's life, so a
// group's home never moves).
func PartitionFor(group string, partitions int32) int32 {
	h := uint32(2166136261)
	for i := 0; i < len(group); i++ {
		h ^= uint32(group[i])
		h *= 16777619
	}
	return int32(h % uint32(partitions))
}
