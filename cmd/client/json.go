package main

import (
	"github.com/stratalog/strata/pkg/client"
)

// The JSON shapes of --output json. Keys are snake_case and stable:
// scripts depend on them.

type topicSummaryJSON struct {
	Name              string `json:"name"`
	Partitions        int32  `json:"partitions"`
	ReplicationFactor int32  `json:"replication_factor"`
}

type partitionJSON struct {
	Partition      int32    `json:"partition"`
	Leader         uint32   `json:"leader"`
	Replicas       []uint32 `json:"replicas"`
	InSyncReplicas []uint32 `json:"in_sync_replicas"`
	HighWatermark  int64    `json:"high_watermark"`
	LogStartOffset int64    `json:"log_start_offset"`
	LogEndOffset   int64    `json:"log_end_offset"`
	// Lagging: the replicas not in sync and how far behind they are.
	Lagging []replicaLagJSON `json:"lagging"`
}

type replicaLagJSON struct {
	NodeID uint32 `json:"node_id"`
	// Answered is false when the replica's broker did not answer: the
	// other fields are then unknown (0).
	Answered      bool  `json:"answered"`
	OffsetsBehind int64 `json:"offsets_behind"`
	BytesBehind   int64 `json:"bytes_behind"` // estimated
	// Copying: the replica is copying the leader's log (a snapshot
	// install); CopiedBytes of CopyTotalBytes are staged.
	Copying        bool  `json:"copying"`
	CopiedBytes    int64 `json:"copied_bytes"`
	CopyTotalBytes int64 `json:"copy_total_bytes"`
	// AbstainUntil: the replica's log lost acknowledged entries to damage;
	// it refetches them and does not vote until its log reaches this raft
	// index (absent: healthy).
	AbstainUntil uint64 `json:"abstain_until,omitempty"`
}

func partitionToJSON(p client.PartitionDetail) partitionJSON {
	out := partitionJSON{
		Partition:      p.Partition,
		Leader:         p.Leader,
		Replicas:       nonNil(p.Replicas),
		InSyncReplicas: nonNil(p.InSyncReplicas),
		HighWatermark:  p.HighWatermark,
		LogStartOffset: p.LogStartOffset,
		LogEndOffset:   p.LogEndOffset,
		Lagging:        []replicaLagJSON{},
	}
	for _, l := range p.Lagging {
		out.Lagging = append(out.Lagging, replicaLagJSON{
			NodeID: l.NodeID, Answered: l.Answered, OffsetsBehind: l.OffsetsBehind, BytesBehind: l.BytesBehind,
			Copying: l.Copying, CopiedBytes: l.CopiedBytes, CopyTotalBytes: l.CopyTotalBytes,
			AbstainUntil: l.AbstainUntil,
		})
	}
	return out
}

// topicDescJSON is a described topic: configs holds every key's value,
// config_sources where each comes from, "topic" (set on the topic) or
// "default" (the broker default), as the table's SOURCE column.
type topicDescJSON struct {
	Name              string            `json:"name"`
	ReplicationFactor int32             `json:"replication_factor"`
	Partitions        []partitionJSON   `json:"partitions"`
	Configs           map[string]string `json:"configs"`
	ConfigSources     map[string]string `json:"config_sources"`
}

func topicJSON(d client.TopicDetail) topicDescJSON {
	out := topicDescJSON{Name: d.Name, ReplicationFactor: d.ReplicationFactor, Partitions: []partitionJSON{},
		Configs: map[string]string{}, ConfigSources: map[string]string{}}
	for _, p := range d.Partitions {
		out.Partitions = append(out.Partitions, partitionToJSON(p))
	}
	for _, c := range d.Configs {
		out.Configs[c.Key] = c.Value
		out.ConfigSources[c.Key] = configSource(c)
	}
	return out
}

func configSource(c client.ConfigEntry) string {
	if c.Default {
		return "default"
	}
	return "topic"
}

func nonNil(ids []uint32) []uint32 {
	if ids == nil {
		return []uint32{}
	}
	return ids
}

type brokerJSON struct {
	NodeID   uint32 `json:"node_id"`
	APIAddr  string `json:"api_addr"`
	HTTPAddr string `json:"http_addr"`
	State    string `json:"state"`
	Version  string `json:"version"`
	// Controller: this broker leads the cluster's metadata.
	Controller bool `json:"controller"`
}

type clusterJSON struct {
	ClusterID    string       `json:"cluster_id"`
	ControllerID uint32       `json:"controller_id"`
	Brokers      []brokerJSON `json:"brokers"`
	// Listener: the listener the addresses are for (the one the command
	// came in on); brokers without it are not in Brokers.
	Listener               string   `json:"listener,omitempty"`
	BrokersWithoutListener []uint32 `json:"brokers_without_listener,omitempty"`
}

// headerJSON is a record header; value_encoding is absent for text, else
// "base64" or "hex" (consume --encoding).
type headerJSON struct {
	Key           string `json:"key"`
	Value         string `json:"value"`
	ValueEncoding string `json:"value_encoding,omitempty"`
}

// recordJSON is one consumed record; key is null for a null key, value
// null for a tombstone. Timestamp is Unix milliseconds. key_encoding and
// value_encoding are absent when the key or value is written as text,
// else "base64" or "hex": bytes that are not UTF-8 are never replaced.
type recordJSON struct {
	Topic         string       `json:"topic"`
	Partition     int32        `json:"partition"`
	Offset        int64        `json:"offset"`
	Timestamp     int64        `json:"timestamp"`
	Key           *string      `json:"key"`
	KeyEncoding   string       `json:"key_encoding,omitempty"`
	Value         *string      `json:"value"`
	ValueEncoding string       `json:"value_encoding,omitempty"`
	Headers       []headerJSON `json:"headers"`
}

type benchJSON struct {
	Records       int64   `json:"records"`
	RecordsPerSec float64 `json:"records_per_sec"`
	MBPerSec      float64 `json:"mb_per_sec"`
	P50Ms         float64 `json:"p50_ms"`
	P90Ms         float64 `json:"p90_ms"`
	P99Ms         float64 `json:"p99_ms"`
	P999Ms        float64 `json:"p999_ms"`
	MaxMs         float64 `json:"max_ms"`
	ElapsedSec    float64 `json:"elapsed_sec"`
}

type groupSummaryJSON struct {
	Group       string `json:"group"`
	State       string `json:"state"`
	Members     int32  `json:"members"`
	Coordinator uint32 `json:"coordinator"`
}

type groupMemberJSON struct {
	MemberID    string   `json:"member_id"`
	InstanceID  string   `json:"instance_id"`
	ClientID    string   `json:"client_id"`
	MemberEpoch int32    `json:"member_epoch"`
	Assignment  []string `json:"assignment"` // "topic/partition"
	Topics      []string `json:"topics"`
	TopicRegex  string   `json:"topic_regex"`
}

// groupPartitionJSON is one partition of a group: committed is -1 when
// nothing is committed; owner is the member id, empty when none.
type groupPartitionJSON struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Committed int64  `json:"committed"`
	LogEnd    int64  `json:"log_end"`
	Lag       int64  `json:"lag"`
	Owner     string `json:"owner"`
}

type groupDescJSON struct {
	Group       string               `json:"group"`
	State       string               `json:"state"`
	Epoch       int32                `json:"epoch"`
	Assignor    string               `json:"assignor"`
	Coordinator uint32               `json:"coordinator"`
	Members     []groupMemberJSON    `json:"members"`
	Partitions  []groupPartitionJSON `json:"partitions"`
	TotalLag    int64                `json:"total_lag"`
}

func groupJSON(d client.GroupDetail) groupDescJSON {
	out := groupDescJSON{Group: d.Group, State: d.State, Epoch: d.Epoch, Assignor: d.Assignor,
		Coordinator: d.Coordinator, Members: []groupMemberJSON{}, Partitions: []groupPartitionJSON{}, TotalLag: d.TotalLag}
	for _, m := range d.Members {
		out.Members = append(out.Members, groupMemberJSON{
			MemberID: m.MemberID, InstanceID: m.InstanceID, ClientID: m.ClientID, MemberEpoch: m.MemberEpoch,
			Assignment: partitionNames(m.Assignment), Topics: nonNilStrings(m.Topics), TopicRegex: m.TopicRegex,
		})
	}
	for _, p := range d.Partitions {
		out.Partitions = append(out.Partitions, groupPartitionJSON{Topic: p.Topic, Partition: p.Partition,
			Committed: p.Committed, LogEnd: p.LogEnd, Lag: p.Lag, Owner: p.MemberID})
	}
	return out
}

// partitionNames lists partitions as "topic/partition".
func partitionNames(tps []client.TopicPartition) []string {
	out := []string{}
	for _, tp := range tps {
		out = append(out, tp.String())
	}
	return out
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// seekJSON is the plan of "strata group seek": current is -1 when
// nothing was committed.
type seekJSON struct {
	Group      string         `json:"group"`
	Executed   bool           `json:"executed"`
	Partitions []seekPartJSON `json:"partitions"`
}

type seekPartJSON struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Current   int64  `json:"current"`
	New       int64  `json:"new"`
}
