package replication

import (
	"errors"

	"github.com/stratalog/strata/pkg/replication/transport"
)

// Which of raft's warnings and errors are routine: logged at Debug by the
// raft logger (hclog.go), because they describe raft working as designed
// and, multiplied by a thousand groups and every retry, would bury the
// lines that need an operator. Measured before this filter, on three
// brokers with a 1,000-partition RF 3 topic: creating it logged ~500
// errors, stopping one broker ~1,200 per surviving broker, restarting one
// ~3,000.
//
// An RPC failure is routine when its error says so:
//
//   - transport.ErrUnknownGroup: the peer has not opened the group yet (a
//     topic being created, a replica being added) or has already closed it
//     (a topic being deleted); raft retries with backoff.
//   - transport.ErrClosed: this broker is shutting the group down.
//   - transport.ErrUnreachable: the peer is stopped, killed, restarting or
//     cut off; the transport has logged one line saying so, and logs
//     another when it answers again (transport/reach.go).
//
// Any other RPC error (a timeout to a peer that answers others, a frame
// too large, a malformed frame) keeps raft's level. So do raft's storage
// errors, and "failed to contact quorum of nodes, stepping down": a
// partition that lost its majority is news.
//
// Some messages are routine whatever their arguments; raft 1.7's wording,
// checked by TestRoutineMessagesExist against the raft module in use.
var routineMessages = map[string]bool{
	// A leader's lease check, per follower per check: the transport
	// reports an unreachable peer once.
	"failed to contact": true,
	// Log matching: a follower that restarted, or was behind, is walked
	// back to the last entry it shares with the leader.
	"failed to get previous log":                 true,
	"previous log term mis-match":                true,
	"appendEntries rejected, sending older logs": true,
	// A follower replacing the uncommitted tail of a deposed leader's
	// term with the new leader's entries (never committed entries: raft
	// guarantees it). Under load, after a broker stops or leadership is
	// handed back, one line per group (TestRoutineOperationsLogNoErrors
	// saw 12-27 on 300 partitions).
	"clearing log suffix": true,
	// Elections other brokers lose, or that this one hears twice.
	"rejecting vote request since our last term is greater":      true,
	"rejecting vote request since our last index is greater":     true,
	"rejecting vote request since we have a leader":              true,
	"rejecting pre-vote request since our last term is greater":  true,
	"rejecting pre-vote request since our last index is greater": true,
	"rejecting pre-vote request since we have a leader":          true,
	"duplicate requestVote from":                                 true,
	// An election that did not finish in time is tried again: a retry.
	// The broker's elector logs the elections it starts; the leaderless
	// partitions show in topic describe and the metrics.
	"Election timeout reached, restarting election": true,
	// Leadership moved on; the group logs its leadership changes itself.
	"new leader elected, stepping down":         true,
	"peer has newer term, stopping replication": true,
}

// routine reports whether raft's line msg with key/value args describes
// raft working as designed (see above).
func routine(msg string, args []any) bool {
	if routineMessages[msg] {
		return true
	}
	for i := 0; i+1 < len(args); i += 2 {
		if k, _ := args[i].(string); k != "error" {
			continue
		}
		err, ok := args[i+1].(error)
		return ok && (errors.Is(err, transport.ErrUnknownGroup) ||
			errors.Is(err, transport.ErrClosed) ||
			errors.Is(err, transport.ErrUnreachable))
	}
	return false
}

// heartbeatTimeout reports raft's line about a heartbeat that got no answer
// in time: a warning, not an error. The peer may be paused or overloaded;
// raft retries with backoff, and once the peer stays silent past
// --raft-heartbeat-timeout the transport reports it unreachable (one line)
// and this line goes to Debug. Logged as an error it was the only error
// line of a follower paused for 8 s while 300 MB were written
// (test/integration TestFollowerCatchesUpAfterPause, once in CI).
func heartbeatTimeout(msg string, args []any) bool {
	if msg != "failed to heartbeat to" {
		return false
	}
	for i := 0; i+1 < len(args); i += 2 {
		if k, _ := args[i].(string); k == "error" {
			err, ok := args[i+1].(error)
			return ok && errors.Is(err, transport.ErrTimeout)
		}
	}
	return false
}
