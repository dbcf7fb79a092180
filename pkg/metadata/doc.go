// Package metadata owns the cluster's metadata: which topics exist, how many
// partitions each has, each topic's configuration (validated), which brokers
// exist, and which brokers hold each partition's replicas and lead it. It is kept by
// a Raft group over the brokers (RaftStore, with raft-boltdb for its log and
// stable store): a few voters, the rest non-voters, so every broker reads
// the metadata locally. Every change is a Change value applied by a
// deterministic state (state.apply), so the same change gives the same
// result on every replica.
//
// Usage:
//
//	st, err := metadata.OpenRaftStore(metadata.RaftConfig{NodeID: 1, Dir: dir, Transport: tr})
//	cfg, err := metadata.ParseTopicConfig(map[string]string{"retention.ms": "-1"}, defaults)
//	placement, err := metadata.Place(liveBrokers, load, 3, 3)
//	err = st.Apply(ctx, metadata.CreateTopic{Topic: t}) // on the quorum's leader
//
// Caller's duties:
//  1. Validate names with ValidateTopicName and configs with
//     ParseTopicConfig (against the broker's defaults) before applying.
//     Apply validates every change again where it is applied
//     (validate.go): names, ids, replica lists against the registered
//     brokers, partition counts, config keys and values; a refused change
//     returns its error and changes nothing, on every replica alike.
//  2. Treat returned Topic values as read-only snapshots.
//  3. Apply only on the quorum's leader (others get NOT_LEADER naming it);
//     the broker forwards changes there.
//  4. Build partition paths only with PartitionDir, which refuses any that
//     would leave the data directory.
package metadata
