package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/metadata"
)

// MovePartition changes a partition's replica set, the way Kafka and
// Redpanda reassign partitions, streaming a MoveProgress for each step:
//
//  1. "expanding replicas": the metadata lists old ∪ new, so the new
//     brokers open an empty replica (they are not in the partition's
//     Initial set, so they do not bootstrap a group of their own);
//  2. "adding N as non-voter": the leader replicates to N, which does
//     not count towards the quorum while it is empty;
//  3. "catching up" (every ~500 ms, with the lag in records and bytes, and
//     while N copies the leader's log for a snapshot install, the bytes
//     copied of the total) until N's log end reaches the leader's high
//     watermark;
//  4. "promoting N" to voter;
//  5. "moving leadership to N" if the leader is to be removed, then
//     "removing M" for each old replica no longer wanted;
//  6. "shrinking replicas": the metadata lists the new set; the removed
//     brokers close their replicas and delete their files; then "done".
//
// Every step is bounded by the call's context. A failed or cancelled move
// leaves a consistent partition: every record acknowledged stays
// committed, the metadata lists every broker that may still hold a
// replica, and the error names the step. The operator re-runs the same
// move: each step checks the group's configuration first and skips what
// is done, so a re-run converges. One move per partition runs on a broker
// at a time; running two moves of one partition from different brokers is
// not guarded against.
//
// Errors: UNKNOWN_TOPIC, UNKNOWN_PARTITION; INVALID_REQUEST for an empty or
// duplicated replica list or a move of this partition already running
// here; INVALID_REPLICATION for brokers that are not registered and alive;
// UNAVAILABLE (retriable) when a step could not finish in time.
func (b *Broker) MovePartition(req *v1.MovePartitionRequest, stream v1.Strata_MovePartitionServer) error {
	err := b.movePartition(stream.Context(), req.Topic, req.Partition, req.Replicas, stream.Send)
	return apierr.ToStatus(err)
}

// catchUpReport is how often a move reports a new replica's lag.
const catchUpReport = 500 * time.Millisecond

// movePartition runs a move; report sends each step (its error ends the
// move).
func (b *Broker) movePartition(ctx context.Context, topic string, p int32, want []metadata.NodeID, report func(*v1.MoveProgress) error) error {
	t, a, err := b.assignment(topic, p)
	if err != nil {
		return err
	}
	if err := b.validateReplicas(want); err != nil {
		return err
	}
	group := t.GroupName(p)
	if _, busy := b.moving.LoadOrStore(group, true); busy {
		return apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_REQUEST, "a move of %s/%d is already running on broker %d", topic, p, b.cfg.NodeID)
	}
	defer b.moving.Delete(group)

	step := func(s string) error {
		b.log.Info("partition move", zap.String("topic", topic), zap.Int32("partition", p), zap.String("step", s))
		return report(&v1.MoveProgress{Topic: topic, Partition: p, Step: s})
	}
	failed := func(s string, err error) error {
		if ctx.Err() != nil && !isAPIError(err) {
			err = apierr.New(v1.ErrorCode_ERROR_CODE_UNAVAILABLE, "%v", ctx.Err())
		}
		e := apierr.FromError(err)
		out := *e
		out.Message = fmt.Sprintf("move %s/%d to %v failed while %s: %s (re-run the same move to finish it)", topic, p, want, s, e.Message)
		return &out
	}

	// 1. Expand the metadata so that every broker involved holds a replica.
	union := expandReplicas(a.Replicas, want)
	if !slices.Equal(union, a.Replicas) {
		if err := step(fmt.Sprintf("expanding replicas to %v", union)); err != nil {
			return err
		}
		if err := b.applyMeta(ctx, metadata.Reassign{Topic: topic, Partition: p, Replicas: union}); err != nil {
			return failed("expanding replicas", err)
		}
	}
	members, err := b.changeReplicas(ctx, t, p, v1.ChangeReplicasRequest_OP_NONE, 0)
	if err != nil {
		return failed("reading the group's configuration", err)
	}

	// 2-4. Add each new replica as a non-voter, let it catch up, promote it.
	for _, n := range want {
		if isVoter(members, n) {
			continue
		}
		if !isMember(members, n) {
			if err := step(fmt.Sprintf("adding %d as non-voter", n)); err != nil {
				return err
			}
			// Wait for n to open its replica (it learns of it from the
			// metadata): raft's first AppendEntries to a new member would
			// otherwise find no group there, and raft retries a failed
			// follower only on new entries or after its CommitTimeout (20
			// heartbeat timeouts), which left an idle partition's move
			// waiting 20-40 s before the copy started.
			if err := b.waitReplicaOpen(ctx, n, group); err != nil {
				return failed(fmt.Sprintf("adding %d as non-voter", n), err)
			}
			if members, err = b.changeReplicas(ctx, t, p, v1.ChangeReplicasRequest_OP_ADD_NONVOTER, n); err != nil {
				return failed(fmt.Sprintf("adding %d as non-voter", n), err)
			}
		}
		if err := b.catchUp(ctx, union, group, n, func(lag int64, l *v1.ReplicaLag) error {
			m := &v1.MoveProgress{Topic: topic, Partition: p, Step: fmt.Sprintf("catching up %d", n), Lag: lag}
			if l != nil {
				m.LagBytes, m.CopiedBytes, m.CopyTotalBytes = l.BytesBehind, l.CopiedBytes, l.CopyTotalBytes
			}
			return report(m)
		}); err != nil {
			return failed(fmt.Sprintf("catching up %d", n), err)
		}
		if err := step(fmt.Sprintf("promoting %d", n)); err != nil {
			return err
		}
		if members, err = b.changeReplicas(ctx, t, p, v1.ChangeReplicasRequest_OP_ADD_VOTER, n); err != nil {
			return failed(fmt.Sprintf("promoting %d", n), err)
		}
	}

	// 5. Remove the old replicas, moving leadership off them first.
	for _, m := range members {
		if slices.Contains(want, m.NodeId) {
			continue
		}
		if lead := leaderState(b.groupStates(ctx, union, group)); lead != nil && lead.NodeId == m.NodeId {
			to := firstVoter(members, want)
			if err := step(fmt.Sprintf("moving leadership from %d to %d", m.NodeId, to)); err != nil {
				return err
			}
			if _, err := b.changeReplicas(ctx, t, p, v1.ChangeReplicasRequest_OP_TRANSFER_LEADER, to); err != nil {
				return failed(fmt.Sprintf("moving leadership from %d to %d", m.NodeId, to), err)
			}
		}
		if err := step(fmt.Sprintf("removing %d", m.NodeId)); err != nil {
			return err
		}
		if _, err := b.changeReplicas(ctx, t, p, v1.ChangeReplicasRequest_OP_REMOVE, m.NodeId); err != nil {
			return failed(fmt.Sprintf("removing %d", m.NodeId), err)
		}
	}

	// 6. Shrink the metadata: the removed brokers drop their copies.
	if err := step(fmt.Sprintf("shrinking replicas to %v", want)); err != nil {
		return err
	}
	if err := b.applyMeta(ctx, metadata.Reassign{Topic: topic, Partition: p, Replicas: want}); err != nil {
		return failed("shrinking replicas", err)
	}
	if err := b.waitMeta(ctx, func() bool {
		cur, ok := b.meta.Topic(topic)
		return !ok || cur.ID != t.ID || slices.Equal(cur.Assignments[p].Replicas, want)
	}); err != nil {
		return failed("shrinking replicas", err)
	}
	return step("done")
}

// waitReplicaOpen waits until node reports a replica of group.
func (b *Broker) waitReplicaOpen(ctx context.Context, node metadata.NodeID, group string) error {
	for b.groupStates(ctx, []metadata.NodeID{node}, group)[node] == nil {
		if err := sleepCtx(ctx, pollInterval); err != nil {
			return err
		}
	}
	return nil
}

func isAPIError(err error) bool {
	var e *apierr.Error
	return errors.As(err, &e)
}

// catchUp waits until node's replica has every record the leader has
// committed (its log end at or past the leader's high watermark, as read
// just before) and has heard from the leader, reporting the lag every
// catchUpReport (l nil while unknown).
func (b *Broker) catchUp(ctx context.Context, nodes []metadata.NodeID, group string, node metadata.NodeID, report func(lag int64, l *v1.ReplicaLag) error) error {
	last, wasCopying := time.Time{}, false
	for {
		states := b.groupStates(ctx, nodes, group)
		lead, st := leaderState(states), states[node]
		lag := int64(-1) // unknown: no leader, or the replica is not open yet
		var l *v1.ReplicaLag
		if lead != nil && st != nil {
			lag = max(0, lead.HighWatermark-st.LogEndOffset)
			if lag == 0 && st.Leader != 0 && st.Term == lead.Term {
				return report(0, nil)
			}
			l = replicaLag(node, lead, st)
		}
		copying := l != nil && l.Copying
		if time.Since(last) >= catchUpReport || copying != wasCopying {
			// A copy's start and end are reported at once: a fast copy
			// would otherwise fit between two reports.
			wasCopying = copying
			if err := report(lag, l); err != nil {
				return err
			}
			last = time.Now()
		}
		if err := sleepCtx(ctx, pollInterval); err != nil {
			return err
		}
	}
}

// expandReplicas is old ∪ new during a move. Its first replica (the one
// the rebalancer hands leadership to) is one that stays and already votes
// when there is one, so the rebalancer neither hands leadership to a
// replica about to be removed nor to one still catching up.
func expandReplicas(old, want []metadata.NodeID) []metadata.NodeID {
	var out []metadata.NodeID
	for _, n := range want {
		if slices.Contains(old, n) {
			out = append(out, n)
			break
		}
	}
	for _, n := range slices.Concat(old, want) {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// firstVoter is the first of want that votes in the group (want[0] when
// none does, which the caller's order prevents).
func firstVoter(members []*v1.GroupMember, want []metadata.NodeID) metadata.NodeID {
	for _, n := range want {
		if isVoter(members, n) {
			return n
		}
	}
	return want[0]
}

// validateReplicas checks a requested replica set: 1 to N distinct brokers,
// each registered and alive.
func (b *Broker) validateReplicas(want []metadata.NodeID) error {
	live := b.liveBrokers()
	if len(want) == 0 {
		return apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_REQUEST, "no replicas given: list 1 to %d broker ids", len(live))
	}
	for i, n := range want {
		if slices.Contains(want[:i], n) {
			return apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_REQUEST, "broker %d is listed twice in replicas %v", n, want)
		}
		if !slices.Contains(live, n) {
			return apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_REPLICATION, "broker %d is not a registered, alive broker (replicas %v)", n, want)
		}
	}
	return nil
}
