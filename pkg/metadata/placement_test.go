package metadata

import (
	"errors"
	"testing"

	"github.com/stratalog/strata/pkg/apierr"
)

func TestPlaceSpreadsLeadersAndReplicas(t *testing.T) {
	for _, tc := range []struct {
		brokers    []NodeID
		partitions int32
		rf         int32
	}{
		{[]NodeID{1, 2, 3}, 3, 3},
		{[]NodeID{1, 2, 3}, 12, 3},
		{[]NodeID{1, 2, 3, 4}, 12, 3},
		{[]NodeID{1, 2, 3, 4, 5, 6}, 60, 3},
		{[]NodeID{1, 2, 3, 4}, 8, 2},
		{[]NodeID{7}, 5, 1},
	} {
		got, err := Place(tc.brokers, nil, tc.partitions, tc.rf)
		if err != nil {
			t.Fatal(err)
		}
		leaders, replicas := map[NodeID]int{}, map[NodeID]int{}
		for p, rs := range got {
			if int32(len(rs)) != tc.rf {
				t.Fatalf("%v: partition %d has %v", tc, p, rs)
			}
			seen := map[NodeID]bool{}
			for _, r := range rs {
				if seen[r] {
					t.Fatalf("%v: partition %d repeats broker %d: %v", tc, p, r, rs)
				}
				seen[r] = true
				replicas[r]++
			}
			leaders[rs[0]]++
		}
		n := int32(len(tc.brokers))
		for _, b := range tc.brokers {
			if d := leaders[b] - int(tc.partitions/n); d < 0 || d > 1 {
				t.Errorf("%v: broker %d leads %d partitions: %v", tc, b, leaders[b], leaders)
			}
			want := float64(tc.partitions*tc.rf) / float64(n)
			if float64(replicas[b]) < want-1.5 || float64(replicas[b]) > want+1.5 {
				t.Errorf("%v: broker %d holds %d replicas, want about %.1f", tc, b, replicas[b], want)
			}
		}
	}
}

func TestPlacePrefersLeastLoaded(t *testing.T) {
	got, err := Place([]NodeID{1, 2, 3}, map[NodeID]int{1: 10, 2: 10, 3: 0}, 1, 1)
	if err != nil || got[0][0] != 3 {
		t.Fatalf("got %v %v, want broker 3", got, err)
	}
}

func TestPlaceRejectsTooManyReplicas(t *testing.T) {
	if _, err := Place([]NodeID{1, 2}, nil, 1, 3); !errors.Is(err, apierr.ErrInvalidReplication) {
		t.Fatalf("got %v", err)
	}
	if _, err := Place([]NodeID{1, 2}, nil, 1, 0); !errors.Is(err, apierr.ErrInvalidReplication) {
		t.Fatalf("got %v", err)
	}
}
