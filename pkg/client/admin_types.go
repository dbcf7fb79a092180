package client

import (
	"slices"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
)

// The types Admin's topic and cluster calls return. They are copies of
// the API's messages (api/v1), so that a user of the client imports only
// this package, as franz-go's kadm does for Kafka's. The alternative, the
// generated messages themselves, tied every caller to protobuf's getters
// and to the wire's field names and units (milliseconds as int64). Node
// ids are uint32 as on the wire; 0 means none (no leader, no controller).

// TopicSummary is one topic of ListTopics.
type TopicSummary struct {
	Name              string
	Partitions        int32
	ReplicationFactor int32
}

// TopicDetail is a described topic: its partitions and every config key,
// each marked with whether the value is the broker default.
type TopicDetail struct {
	Name              string
	ReplicationFactor int32
	Partitions        []PartitionDetail // by partition id
	Configs           []ConfigEntry     // every key, sorted as the broker sends them
}

// Config returns the entry of key, false if the topic has no such key.
func (d TopicDetail) Config(key string) (ConfigEntry, bool) {
	for _, c := range d.Configs {
		if c.Key == key {
			return c, true
		}
	}
	return ConfigEntry{}, false
}

// ConfigEntry is one topic config key and its value. Default is true
// when the value comes from the broker default rather than the topic:
// AlterTopicConfig's del resets a key to it.
type ConfigEntry struct {
	Key     string
	Value   string
	Default bool
}

// PartitionDetail is one partition of a described topic.
type PartitionDetail struct {
	Partition      int32
	Leader         uint32 // node id; 0 when the partition has no leader
	Replicas       []uint32
	InSyncReplicas []uint32
	HighWatermark  int64 // first offset not yet visible to consumers
	LogStartOffset int64 // first offset still stored
	LogEndOffset   int64 // next offset to be written on the leader
	SizeBytes      int64
	Segments       int32
	Lagging        []ReplicaLag // the replicas not in sync
}

// ReplicaLag is how far a replica that is not in sync is behind its
// leader.
type ReplicaLag struct {
	NodeID uint32
	// Answered is false when the replica's broker did not answer: the
	// other fields are then unknown (0).
	Answered      bool
	OffsetsBehind int64 // the leader's high watermark less the replica's log end
	BytesBehind   int64 // estimated from the leader's segments
	// Copying is true while the replica copies the leader's log (a
	// snapshot install): CopiedBytes of CopyTotalBytes are staged.
	Copying        bool
	CopiedBytes    int64
	CopyTotalBytes int64
	// AbstainUntil, when not 0, says the replica's log lost acknowledged
	// entries to damage: it refetches them and does not vote until its
	// log reaches this Raft index.
	AbstainUntil uint64
}

// ClusterMetadata is the cluster as Metadata sees it: brokers,
// controller and every topic's partition leaders.
type ClusterMetadata struct {
	ClusterID    string
	ControllerID uint32 // node id of the metadata leader; 0 when none
	// Brokers have the addresses of Listener, the listener the request
	// came in on (e.g. "CLIENT", "EXTERNAL"). Brokers without a listener
	// of that name are left out and listed in BrokersWithoutListener: a
	// partition they lead cannot be reached through this listener.
	Brokers                []BrokerDetail
	Listener               string
	BrokersWithoutListener []uint32
	Topics                 []TopicMetadata
}

// BrokerDetail is one broker of the cluster.
type BrokerDetail struct {
	NodeID   uint32
	APIAddr  string // the advertised address of ClusterMetadata.Listener
	HTTPAddr string
	State    string // "alive", "suspect", "dead" or "left"
	Version  string
}

// TopicMetadata is one topic's partition leaders. Err is set (an
// *apierr.Error) when the broker could not describe the topic.
type TopicMetadata struct {
	Name       string
	Err        error
	Partitions []PartitionMetadata
}

// PartitionMetadata is one partition's leader and replicas.
type PartitionMetadata struct {
	Partition int32
	Leader    uint32 // node id; 0 when none
	Replicas  []uint32
}

// OffsetSpec says which offset ListOffsets looks up.
type OffsetSpec uint8

const (
	// OffsetSpecLatest is the high watermark: the offset the next record
	// consumers can read will have.
	OffsetSpecLatest OffsetSpec = iota
	// OffsetSpecEarliest is the log start offset: the first record still
	// stored.
	OffsetSpecEarliest
	// OffsetSpecTimestamp is the first record whose timestamp is at or
	// after a given time.
	OffsetSpecTimestamp
)

func (s OffsetSpec) String() string {
	switch s {
	case OffsetSpecLatest:
		return "latest"
	case OffsetSpecEarliest:
		return "earliest"
	case OffsetSpecTimestamp:
		return "timestamp"
	}
	return "OffsetSpec(?)"
}

func (s OffsetSpec) proto() v1.OffsetSpec {
	switch s {
	case OffsetSpecEarliest:
		return v1.OffsetSpec_OFFSET_SPEC_EARLIEST
	case OffsetSpecTimestamp:
		return v1.OffsetSpec_OFFSET_SPEC_TIMESTAMP
	}
	return v1.OffsetSpec_OFFSET_SPEC_LATEST
}

// ListedOffset is the offset ListOffsets found. Found is false only for
// OffsetSpecTimestamp with no record at or after the time; Offset is then
// the high watermark. Timestamp is the time asked for with
// OffsetSpecTimestamp, the zero time with the other specs.
type ListedOffset struct {
	Topic     string
	Partition int32
	Offset    int64
	Timestamp time.Time
	Found     bool
}

func topicSummaryFromProto(t *v1.TopicSummary) TopicSummary {
	return TopicSummary{Name: t.GetName(), Partitions: t.GetPartitions(), ReplicationFactor: t.GetReplicationFactor()}
}

func topicDetailFromProto(d *v1.TopicDescription) TopicDetail {
	out := TopicDetail{Name: d.GetName(), ReplicationFactor: d.GetReplicationFactor()}
	for _, p := range d.GetPartitions() {
		out.Partitions = append(out.Partitions, partitionDetailFromProto(p))
	}
	for _, c := range d.GetConfigs() {
		out.Configs = append(out.Configs, ConfigEntry{Key: c.GetKey(), Value: c.GetValue(), Default: c.GetIsDefault()})
	}
	return out
}

func partitionDetailFromProto(p *v1.PartitionDescription) PartitionDetail {
	out := PartitionDetail{
		Partition: p.GetPartition(), Leader: p.GetLeader(), Replicas: p.GetReplicas(), InSyncReplicas: p.GetInSyncReplicas(),
		HighWatermark: p.GetHighWatermark(), LogStartOffset: p.GetLogStartOffset(), LogEndOffset: p.GetLogEndOffset(),
		SizeBytes: p.GetSizeBytes(), Segments: p.GetSegments(),
	}
	for _, l := range p.GetLagging() {
		out.Lagging = append(out.Lagging, ReplicaLag{
			NodeID: l.GetNodeId(), Answered: l.GetAnswered(), OffsetsBehind: l.GetOffsetsBehind(), BytesBehind: l.GetBytesBehind(),
			Copying: l.GetCopying(), CopiedBytes: l.GetCopiedBytes(), CopyTotalBytes: l.GetCopyTotalBytes(), AbstainUntil: l.GetAbstainUntil(),
		})
	}
	return out
}

// clusterMetadataFromProto copies the slices too: m is the client's
// routing cache, which the caller must not be able to change.
func clusterMetadataFromProto(m *v1.MetadataResponse) ClusterMetadata {
	out := ClusterMetadata{ClusterID: m.GetClusterId(), ControllerID: m.GetControllerId(), Listener: m.GetListener(),
		BrokersWithoutListener: slices.Clone(m.GetBrokersWithoutListener())}
	for _, b := range m.GetBrokers() {
		out.Brokers = append(out.Brokers, BrokerDetail{NodeID: b.GetNodeId(), APIAddr: b.GetApiAddr(), HTTPAddr: b.GetHttpAddr(),
			State: b.GetState(), Version: b.GetVersion()})
	}
	for _, t := range m.GetTopics() {
		tm := TopicMetadata{Name: t.GetName(), Err: apierr.FromProto(t.GetError())}
		for _, p := range t.GetPartitions() {
			tm.Partitions = append(tm.Partitions, PartitionMetadata{Partition: p.GetPartition(), Leader: p.GetLeader(), Replicas: slices.Clone(p.GetReplicas())})
		}
		out.Topics = append(out.Topics, tm)
	}
	return out
}

func listedOffsetFromProto(r *v1.ListOffsetsPartitionResult) ListedOffset {
	return ListedOffset{Topic: r.GetTopic(), Partition: r.GetPartition(), Offset: r.GetOffset(),
		Timestamp: timeFromMs(r.GetTimestampMs()), Found: r.GetFound()}
}

// timeFromMs is a wire time in Unix milliseconds; 0 or less (unset) is
// the zero time.
func timeFromMs(ms int64) time.Time {
	if ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}
