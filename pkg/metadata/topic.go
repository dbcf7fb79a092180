package metadata

import (
	"fmt"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
)

// MaxTopicNameLen is Kafka's limit, so topic names move between systems.
const MaxTopicNameLen = 249

// MaxPartitions bounds one topic's partition count.
const MaxPartitions = 10000

// PartitionID numbers a topic's partitions from 0.
type PartitionID = int32

// Topic is a topic as the metadata stores it.
type Topic struct {
	Name              string            `json:"name"`
	ID                string            `json:"id"` // unique per creation, so a recreated topic never reuses old files
	Partitions        int32             `json:"partitions"`
	ReplicationFactor int32             `json:"replication_factor"`
	Config            map[string]string `json:"config"` // only keys set on the topic; defaults are not copied
	// Assignments lists each partition's replicas; the first is the
	// preferred leader.
	Assignments []Assignment `json:"assignments"`
}

// Assignment is where one partition lives.
type Assignment struct {
	Replicas []NodeID `json:"replicas"`
	// Initial is the replica set the partition's Raft group was
	// bootstrapped with. A replica outside it never bootstraps: it starts
	// empty and waits for the leader to add it (partition move).
	Initial []NodeID `json:"initial"`
	// Leader and LeaderTerm are what the partition's leader last
	// published; a newer term always wins.
	Leader     NodeID `json:"leader,omitempty"`
	LeaderTerm uint64 `json:"leader_term,omitempty"`
}

// NodeID identifies a broker.
type NodeID = uint32

// GroupName is the name of a partition's Raft group, unique for every
// creation of a topic.
func (t Topic) GroupName(p int32) string { return fmt.Sprintf("%s/%d", t.ID, p) }

// ValidateTopicName accepts what Kafka accepts: 1 to 249 characters from
// [a-zA-Z0-9._-], not "." or "..". Names starting with "__" are reserved for
// internal topics.
func ValidateTopicName(name string) error { return checkTopicName(name, false) }

func checkTopicName(name string, internalOK bool) error {
	bad := func(why string) error {
		return apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_TOPIC, "invalid topic name %q: %s", name, why)
	}
	switch {
	case name == "":
		return bad("it is empty")
	case name == "." || name == "..":
		return bad(`"." and ".." are not allowed`)
	case len(name) > MaxTopicNameLen:
		return bad(fmt.Sprintf("%d characters, at most %d are allowed", len(name), MaxTopicNameLen))
	case !internalOK && IsInternalTopic(name):
		return bad(`names starting with "__" are reserved for internal topics`)
	}
	for _, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return bad(fmt.Sprintf("character %q is not allowed (use letters, digits, '.', '_' and '-')", c))
		}
	}
	return nil
}

// ValidatePartitions checks a requested partition count.
func ValidatePartitions(n int32) error {
	if n < 1 || n > MaxPartitions {
		return apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_PARTITIONS,
			"invalid partition count %d: a topic has 1 to %d partitions", n, MaxPartitions)
	}
	return nil
}
