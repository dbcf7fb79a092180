package client

import (
	"time"

	v1 "github.com/stratalog/strata/api/v1"
)

// GroupSummary is one consumer group of ListGroups.
type GroupSummary struct {
	Group       string
	State       string // "empty", "stable" or "reconciling"
	Members     int32
	Coordinator uint32 // node id of the broker that coordinates the group
}

// GroupDetail is a described consumer group: its members with their
// assignments and, per partition it has committed or is assigned, how
// far it is behind.
type GroupDetail struct {
	Group       string
	State       string // "empty", "stable" or "reconciling"
	Epoch       int32
	Assignor    string
	Coordinator uint32 // node id
	Members     []GroupMemberDetail
	Partitions  []GroupPartitionLag
	TotalLag    int64
}

// GroupMemberDetail is one member of a described group.
type GroupMemberDetail struct {
	MemberID    string
	InstanceID  string // empty for a dynamic member
	ClientID    string
	MemberEpoch int32
	Assignment  []TopicPartition // the partitions it owns
	Topics      []string         // what it subscribed to: Topics ...
	TopicRegex  string           // ... or a TopicRegex
}

// GroupPartitionLag is one partition of a described group.
type GroupPartitionLag struct {
	Topic     string
	Partition int32
	Committed int64 // -1 when nothing is committed
	LogEnd    int64 // the partition's high watermark
	// Lag is LogEnd less Committed (less the log start offset when
	// nothing is committed).
	Lag      int64
	MemberID string // the member that owns the partition; empty when none
}

// CommittedOffset is a group's committed offset of one partition:
// Offset is the next offset to consume, -1 when nothing is committed.
type CommittedOffset struct {
	Topic      string
	Partition  int32
	Offset     int64
	Metadata   string
	CommitTime time.Time // the zero time when nothing is committed
}

func groupSummaryFromProto(g *v1.GroupSummary) GroupSummary {
	return GroupSummary{Group: g.GetGroup(), State: g.GetState(), Members: g.GetMembers(), Coordinator: g.GetCoordinator()}
}

func groupDetailFromProto(d *v1.DescribeGroupResponse) GroupDetail {
	out := GroupDetail{Group: d.GetGroup(), State: d.GetState(), Epoch: d.GetEpoch(), Assignor: d.GetAssignor(),
		Coordinator: d.GetCoordinator(), TotalLag: d.GetTotalLag()}
	for _, m := range d.GetMembers() {
		out.Members = append(out.Members, GroupMemberDetail{MemberID: m.GetMemberId(), InstanceID: m.GetInstanceId(),
			ClientID: m.GetClientId(), MemberEpoch: m.GetMemberEpoch(), Assignment: fromTopics(m.GetAssignment()),
			Topics: m.GetTopics(), TopicRegex: m.GetTopicRegex()})
	}
	for _, p := range d.GetPartitions() {
		out.Partitions = append(out.Partitions, GroupPartitionLag{Topic: p.GetTopic(), Partition: p.GetPartition(),
			Committed: p.GetCommitted(), LogEnd: p.GetLogEnd(), Lag: p.GetLag(), MemberID: p.GetMemberId()})
	}
	return out
}

func committedOffsetsFromProto(offs []*v1.CommittedOffset) []CommittedOffset {
	out := make([]CommittedOffset, 0, len(offs))
	for _, o := range offs {
		out = append(out, CommittedOffset{Topic: o.GetTopic(), Partition: o.GetPartition(), Offset: o.GetOffset(),
			Metadata: o.GetMetadata(), CommitTime: timeFromMs(o.GetCommitTimeMs())})
	}
	return out
}
