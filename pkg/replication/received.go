package replication

import (
	"errors"
	"fmt"

	"github.com/hashicorp/raft"

	"github.com/stratalog/strata/pkg/record"
)

// Replicas prove they agree, batch by batch.
//
// Every replica assigns a batch's offsets itself, from its own log's next
// offset, and the leader's copy of the batch carries the base offset the
// leader assigned (segment.Log.Append rewrites it in place, outside the
// batch's CRC). So a follower storing entries it was sent checks, for
// every batch, before it stores any of them:
//
//   - its CRC-32C: the bytes are the ones the producer's batch had, not
//     bytes changed in the leader's memory, on its disk or on the way;
//   - its base offset: the offset this replica is about to give it. A
//     mismatch means the two logs disagree below this point, which raft's
//     log matching should make impossible: storing it would make the same
//     offset name different records on different replicas.
//
// Either failure refuses the whole StoreLogs: raft answers the leader
// with a failure and retries, and the error is logged. Nothing is stored.
// The leader's own appends skip the offset check: they carry the
// producer's base offset (usually 0) until stored.

// errDisagree: a batch sent by the leader fails the follower's checks.
var errDisagree = errors.New("replication: a batch sent by the leader fails this replica's checks")

// checkReceived checks the command batches among logs, which a follower
// is about to store from offset next on.
func checkReceived(logs []*raft.Log, next int64) error {
	for _, l := range logs {
		if l.Type != raft.LogCommand || isControl(l.Data) {
			continue
		}
		h, err := record.ParseHeader(l.Data)
		if err != nil {
			return fmt.Errorf("%w: raft entry %d: %v", errDisagree, l.Index, err)
		}
		if h.Size() != len(l.Data) {
			return fmt.Errorf("%w: raft entry %d: batch length says %d bytes, %d present", errDisagree, l.Index, h.Size(), len(l.Data))
		}
		if got := record.Checksum(l.Data); got != h.CRC {
			return fmt.Errorf("%w: raft entry %d: batch CRC %08x, computed %08x (corrupt on the leader or on the way)", errDisagree, l.Index, h.CRC, got)
		}
		if h.BaseOffset != next {
			return fmt.Errorf("%w: raft entry %d: batch at offset %d, this replica's next offset is %d (the logs disagree below it)", errDisagree, l.Index, h.BaseOffset, next)
		}
		next = h.NextOffset()
	}
	return nil
}
