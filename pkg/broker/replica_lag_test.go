package broker

import (
	"testing"

	"google.golang.org/protobuf/proto"

	v1 "github.com/stratalog/strata/api/v1"
)

func TestReplicaLag(t *testing.T) {
	// The leader holds offsets 100..1100 in 1,000,000 bytes (1,000 per offset).
	lead := &v1.ReplicaState{NodeId: 1, HighWatermark: 1000, LogStartOffset: 100, LogEndOffset: 1100, SizeBytes: 1_000_000}
	for _, tc := range []struct {
		name string
		st   *v1.ReplicaState
		want *v1.ReplicaLag
	}{
		{"no answer", nil, &v1.ReplicaLag{NodeId: 2}},
		{"behind by replication", &v1.ReplicaState{LogEndOffset: 700},
			&v1.ReplicaLag{NodeId: 2, Answered: true, OffsetsBehind: 300, BytesBehind: 300_000}},
		{"ahead of the high watermark, other term", &v1.ReplicaState{LogEndOffset: 1100},
			&v1.ReplicaLag{NodeId: 2, Answered: true}},
		// An empty replica owes only what the leader still holds; the copy
		// counts as done.
		{"copying", &v1.ReplicaState{Copying: true, CopyBytes: 400_000, CopyTotalBytes: 1_000_000},
			&v1.ReplicaLag{NodeId: 2, Answered: true, OffsetsBehind: 900, BytesBehind: 500_000, Copying: true, CopiedBytes: 400_000, CopyTotalBytes: 1_000_000}},
		{"damaged, refetching", &v1.ReplicaState{LogEndOffset: 400, AbstainUntil: 23},
			&v1.ReplicaLag{NodeId: 2, Answered: true, OffsetsBehind: 600, BytesBehind: 600_000, AbstainUntil: 23}},
		{"a staged copy between retries", &v1.ReplicaState{CopyBytes: 950_000, CopyTotalBytes: 1_000_000},
			&v1.ReplicaLag{NodeId: 2, Answered: true, OffsetsBehind: 900, Copying: true, CopiedBytes: 950_000, CopyTotalBytes: 1_000_000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := replicaLag(2, lead, tc.st)
			if !proto.Equal(got, tc.want) {
				t.Errorf("replicaLag:\n got  %v\n want %v", got, tc.want)
			}
		})
	}
}
