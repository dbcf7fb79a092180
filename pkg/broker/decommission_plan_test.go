package broker

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/metadata"
)

func TestPlanDecommission(t *testing.T) {
	topic := func(name string, rf int32, replicas ...[]metadata.NodeID) metadata.Topic {
		t := metadata.Topic{Name: name, ReplicationFactor: rf}
		for _, r := range replicas {
			t.Assignments = append(t.Assignments, metadata.Assignment{Replicas: r})
		}
		return t
	}
	for _, tc := range []struct {
		name   string
		topics []metadata.Topic
		node   metadata.NodeID
		live   []metadata.NodeID
		want   string // the plan, or the error code
	}{
		{"replacement takes the node's place",
			[]metadata.Topic{topic("a", 3, []uint32{1, 2, 3}, []uint32{2, 3, 4})}, 1, []uint32{1, 2, 3, 4},
			"[{a 0 [4 2 3]}]"},
		{"least loaded first, counting the plan; ties to the lower id",
			[]metadata.Topic{topic("b", 2, []uint32{1, 2}, []uint32{1, 2}, []uint32{1, 3})}, 1, []uint32{1, 2, 3, 4, 5},
			"[{b 0 [4 2]} {b 1 [5 2]} {b 2 [4 3]}]"},
		{"topics by name; untouched partitions left out",
			[]metadata.Topic{topic("z", 1, []uint32{1}), topic("y", 1, []uint32{2}, []uint32{1})}, 1, []uint32{1, 2},
			"[{y 1 [2]} {z 0 [2]}]"},
		{"a half-moved partition just drops the node",
			[]metadata.Topic{topic("m", 2, []uint32{2, 1, 3})}, 1, []uint32{1, 2, 3},
			"[{m 0 [2 3]}]"},
		{"dead brokers are not candidates",
			[]metadata.Topic{topic("d", 2, []uint32{1, 2})}, 1, []uint32{1, 2},
			"INVALID_REPLICATION"},
		{"nothing on the node",
			[]metadata.Topic{topic("n", 1, []uint32{2})}, 1, []uint32{1, 2}, "[]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := planDecommission(tc.topics, tc.node, tc.live)
			got := fmt.Sprint(plan)
			if plan == nil {
				got = "[]"
			}
			if err != nil {
				got = "error"
				if errors.Is(err, apierr.ErrInvalidReplication) {
					got = "INVALID_REPLICATION"
				}
			}
			if got != tc.want {
				t.Errorf("plan %s (%v), want %s", got, err, tc.want)
			}
		})
	}
}
