package client

import v1 "github.com/stratalog/strata/api/v1"

// MoveProgress is one step of MovePartition or DecommissionBroker.
type MoveProgress struct {
	Topic     string
	Partition int32
	// Step says what the move is doing, e.g. "adding 4 as non-voter",
	// "catching up", "promoting 4", "removing 1", "done".
	Step string
	// While the new replica copies the leader's log: CopiedBytes of
	// CopyTotalBytes. While it catches up: Lag records and (an estimate)
	// LagBytes still to fetch.
	CopiedBytes    int64
	CopyTotalBytes int64
	Lag            int64
	LagBytes       int64
	// Done of Total partitions are moved (DecommissionBroker only).
	Done  int32
	Total int32
}

// PartitionVerification is VerifyPartition's result: the replicas
// compared the batches with base offsets in [FromOffset, ToOffset).
type PartitionVerification struct {
	Topic      string
	Partition  int32
	FromOffset int64
	ToOffset   int64
	Batches    int64 // batches compared, per replica
	Bytes      int64 // bytes compared, per replica
	Replicas   []ReplicaChecksum
	// Agree is true when every replica was read and they all hold the
	// same batches. FirstDifference is the base offset of the first batch
	// that differs, -1 when none does (a replica that could not be read
	// makes Agree false with FirstDifference -1).
	Agree           bool
	FirstDifference int64
}

// ReplicaChecksum is one replica's part of a PartitionVerification.
type ReplicaChecksum struct {
	NodeID         uint32
	LogStartOffset int64
	HighWatermark  int64
	CRC            uint32 // CRC-32C of every compared batch, in offset order
	// Error says why the replica could not be read (it is then left out
	// of the comparison); empty when it was. It is the remote broker's
	// message, not a Go error: nothing in it can be matched with errors.Is.
	Error string
}

func moveProgressFromProto(m *v1.MoveProgress) MoveProgress {
	return MoveProgress{Topic: m.GetTopic(), Partition: m.GetPartition(), Step: m.GetStep(),
		CopiedBytes: m.GetCopiedBytes(), CopyTotalBytes: m.GetCopyTotalBytes(), Lag: m.GetLag(), LagBytes: m.GetLagBytes(),
		Done: m.GetDone(), Total: m.GetTotal()}
}

func verificationFromProto(r *v1.VerifyPartitionResponse) PartitionVerification {
	out := PartitionVerification{Topic: r.GetTopic(), Partition: r.GetPartition(), FromOffset: r.GetFromOffset(),
		ToOffset: r.GetToOffset(), Batches: r.GetBatches(), Bytes: r.GetBytes(), Agree: r.GetAgree(),
		FirstDifference: r.GetFirstDifference()}
	for _, rc := range r.GetReplicas() {
		out.Replicas = append(out.Replicas, ReplicaChecksum{NodeID: rc.GetNodeId(), LogStartOffset: rc.GetLogStartOffset(),
			HighWatermark: rc.GetHighWatermark(), CRC: rc.GetCrc(), Error: rc.GetError()})
	}
	return out
}
