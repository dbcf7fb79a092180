package metadata

import (
	"fmt"
	"sort"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
)

// Place chooses replicas for a new topic's partitions: rf distinct brokers
// each, leaders (first replicas) spread evenly, and the partition's
// followers rotated so that no two brokers always follow each other.
// load counts the replicas each broker already has; the least loaded
// broker leads partition 0. It is deterministic for equal inputs. Racks
// would enter here as a constraint on the choice of followers.
func Place(brokers []NodeID, load map[NodeID]int, partitions, rf int32) ([][]NodeID, error) {
	n := int32(len(brokers))
	if rf < 1 || rf > n {
		// Said without a flag's name: the Go client's callers get it too.
		allowed := fmt.Sprintf("the cluster has %d live brokers, so it must be 1 to %d", n, n)
		switch n {
		case 0:
			allowed = "the cluster has no live broker"
		case 1:
			allowed = "the cluster has 1 live broker, so it must be 1"
		}
		return nil, apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_REPLICATION,
			"replication factor %d cannot be placed: %s", rf, allowed)
	}
	ids := append([]NodeID(nil), brokers...)
	sort.Slice(ids, func(i, j int) bool {
		if load[ids[i]] != load[ids[j]] {
			return load[ids[i]] < load[ids[j]]
		}
		return ids[i] < ids[j]
	})
	out := make([][]NodeID, partitions)
	for p := int32(0); p < partitions; p++ {
		leader := p % n
		// Followers step by a shift that changes every n partitions, as
		// Kafka's assignment does, so follower sets vary.
		shift := 1 + (p/n)%max(n-1, 1)
		replicas := []NodeID{ids[leader]}
		for i := int32(1); i < rf; i++ {
			replicas = append(replicas, ids[(leader+i*shift)%n])
		}
		out[p] = dedupe(replicas, ids, leader)
	}
	return out, nil
}

// dedupe replaces repeated brokers (possible when the shift and n share a
// factor) with the next unused ones, keeping the leader first.
func dedupe(replicas, ids []NodeID, leader int32) []NodeID {
	seen := map[NodeID]bool{}
	out := make([]NodeID, 0, len(replicas))
	next := leader
	for _, r := range replicas {
		for seen[r] {
			next = (next + 1) % int32(len(ids))
			r = ids[next]
		}
		seen[r] = true
		out = append(out, r)
	}
	return out
}
