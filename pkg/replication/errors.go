package replication

import (
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
)

// Errors returned by this package. Test with errors.Is; NotLeaderError
// carries a leader hint. Whether a retry helps is said for each.
var (
	// ErrIndeterminate: the entry was handed to raft but the outcome is
	// unknown (leadership was lost, or the caller's context ended first). It
	// may or may not commit. Retriable, but a retry may duplicate the batch;
	// idempotent producers dedupe it. It wraps the cause
	// (raft.ErrLeadershipLost or the context's error).
	ErrIndeterminate = errors.New("replication: outcome unknown, the entry may or may not commit")
	// ErrShutdown: the group was closed. A retry on this replica does not
	// help; the partition may live on elsewhere.
	ErrShutdown = errors.New("replication: group closed")
	// ErrTransferInProgress: the leader is handing leadership to another
	// replica and refuses new entries meanwhile; nothing was appended.
	// Retriable after a short back-off, at the new leader.
	ErrTransferInProgress = errors.New("replication: leadership transfer in progress")
	// ErrInvalidBatch: Apply was given bytes that are not one framed record
	// batch; nothing was appended. A retry with the same bytes does not help.
	ErrInvalidBatch = errors.New("replication: invalid record batch")
	// ErrSnapshotInstall: the leader tried to install a snapshot on this
	// replica, which happens only when the leader no longer holds the log
	// entries the replica needs. Snapshots here hold no data, so an install
	// cannot catch a replica up; the replica must be re-seeded. Not
	// retriable.
	ErrSnapshotInstall = errors.New("replication: snapshot install is not supported: the leader lacks log entries this replica needs")
	// ErrNoLease: this replica's raft calls it leader, but a majority of
	// the voters did not confirm it within its read lease (lease.go): it
	// may have been deposed, or cut off. Reads are refused meanwhile.
	// Retriable: at whichever replica the metadata names leader next.
	ErrNoLease = errors.New("replication: leader without a read lease: a majority of its voters did not confirm its leadership in time")
	// ErrNoHealthyCopy: the replica's log lost acknowledged entries (damage
	// below its tail, or a log that had to be discarded) and it is the
	// group's only replica, so nothing can fetch them back. The group does
	// not start: electing itself would give new records the offsets of the
	// lost ones. A retry does not help; an operator decides (see
	// docs/operations.md, "Damaged logs").
	ErrNoHealthyCopy = errors.New("replication: the log lost acknowledged entries and no other replica holds a copy; the group waits for an operator (docs/operations.md, \"Damaged logs\")")
)

// NotLeaderError: this replica is not the group's leader; nothing was
// appended. Retriable at the leader named by the hint (empty when no leader
// is known, e.g. during an election).
type NotLeaderError struct {
	LeaderID   raft.ServerID
	LeaderAddr raft.ServerAddress
}

func (e *NotLeaderError) Error() string {
	if e.LeaderID == "" {
		return "replication: not the leader; no leader known"
	}
	return fmt.Sprintf("replication: not the leader; leader is %s at %s", e.LeaderID, e.LeaderAddr)
}

// Unwrap lets errors.Is match raft.ErrNotLeader.
func (e *NotLeaderError) Unwrap() error { return raft.ErrNotLeader }
