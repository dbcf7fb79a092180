package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/metadata"
	"github.com/stratalog/strata/pkg/replication"
)

// Partition admin (transfer-leader, move, decommission) changes a
// partition's Raft membership. Only the group's leader can, and the leader
// may move while an operation runs (an election, the rebalancer, the move
// itself), so the operation is coordinated from whichever broker the
// client reached, and each membership change is sent to the leader of the
// moment with the internal ChangeReplicas call. Rejected alternative:
// forwarding the whole move to the leader, which fails halfway as soon as
// leadership moves.

// ChangeReplicas (internal) changes the Raft membership of one of this
// broker's partition replicas, which must lead its group, and returns the
// configuration after the change. OP_NONE only reads it.
//
// Errors: NOT_LEADER (with the leader when known) if this replica does not
// lead or is not here; UNAVAILABLE if the target broker is not registered
// or leadership moved during the change (retry at the new leader);
// INVALID_REQUEST for an unknown op or a transfer to a non-voter.
func (b *Broker) ChangeReplicas(ctx context.Context, req *v1.ChangeReplicasRequest) (*v1.ChangeReplicasResponse, error) {
	part, ok := b.replicas.get(req.Group)
	if !ok {
		return nil, apierr.ToStatus(&apierr.Error{Code: v1.ErrorCode_ERROR_CODE_NOT_LEADER,
			Message: fmt.Sprintf("broker %d holds no replica of group %s", b.cfg.NodeID, req.Group)})
	}
	if !part.IsLeader() {
		return nil, apierr.ToStatus(b.notLeaderOf(part.Topic(), part.ID(), part.Group()))
	}
	g := part.Group()
	id := metadata.ServerID(req.NodeId)
	addr := func() (raft.ServerAddress, error) {
		a := b.raftAddrOf(req.NodeId)
		if a == "" {
			return "", apierr.New(v1.ErrorCode_ERROR_CODE_UNAVAILABLE, "broker %d is not registered", req.NodeId)
		}
		return raftAddress(a), nil
	}
	var err error
	switch req.Op {
	case v1.ChangeReplicasRequest_OP_NONE:
	case v1.ChangeReplicasRequest_OP_ADD_NONVOTER:
		var a raft.ServerAddress
		if a, err = addr(); err == nil {
			err = g.AddNonvoter(ctx, id, a)
		}
	case v1.ChangeReplicasRequest_OP_ADD_VOTER:
		var a raft.ServerAddress
		if a, err = addr(); err == nil {
			err = g.AddVoter(ctx, id, a)
		}
	case v1.ChangeReplicasRequest_OP_REMOVE:
		err = g.RemoveServer(ctx, id)
	case v1.ChangeReplicasRequest_OP_TRANSFER_LEADER:
		var members []*v1.GroupMember
		if members, err = groupMembers(g); err == nil && !isVoter(members, req.NodeId) {
			err = apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_REQUEST, "broker %d is not a voter of %s/%d", req.NodeId, part.Topic(), part.ID())
		}
		var a raft.ServerAddress
		if err == nil {
			if a, err = addr(); err == nil {
				err = g.HandOver(ctx, id, a, b.cfg.RaftHeartbeatTimeout)
			}
		}
	default:
		err = apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_REQUEST, "unknown replica change %v", req.Op)
	}
	if err != nil {
		return nil, apierr.ToStatus(groupError(err))
	}
	members, err := groupMembers(g)
	if err != nil {
		return nil, apierr.ToStatus(groupError(err))
	}
	return &v1.ChangeReplicasResponse{Members: members}, nil
}

// notLeaderOf is the NOT_LEADER error for a local replica that does not
// lead, naming the leader it knows of.
func (b *Broker) notLeaderOf(topic string, p int32, g *replication.Group) *apierr.Error {
	e := &apierr.Error{Code: v1.ErrorCode_ERROR_CODE_NOT_LEADER,
		Message: fmt.Sprintf("broker %d does not lead %s/%d", b.cfg.NodeID, topic, p)}
	if id, _ := g.Leader(); id != "" {
		fmt.Sscan(string(id), &e.LeaderID)
		e.LeaderAddr, _ = b.brokerAPI(e.LeaderID)
	}
	return e
}

// groupError maps the errors of a membership change or leadership transfer
// to API errors: anything that says leadership moved is retriable.
func groupError(err error) error {
	var e *apierr.Error
	var nl *replication.NotLeaderError
	switch {
	case errors.As(err, &e):
		return e
	case errors.As(err, &nl):
		out := &apierr.Error{Code: v1.ErrorCode_ERROR_CODE_NOT_LEADER, Message: err.Error()}
		fmt.Sscan(string(nl.LeaderID), &out.LeaderID)
		return out
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, replication.ErrTransferInProgress),
		errors.Is(err, replication.ErrIndeterminate), errors.Is(err, replication.ErrShutdown),
		errors.Is(err, raft.ErrRaftShutdown), errors.Is(err, raft.ErrEnqueueTimeout),
		errors.Is(err, replication.ErrHandOverAbandoned):
		return apierr.New(v1.ErrorCode_ERROR_CODE_UNAVAILABLE, "leadership is moving: %v", err)
	}
	return apierr.FromError(err)
}

func groupMembers(g *replication.Group) ([]*v1.GroupMember, error) {
	servers, err := g.Configuration()
	if err != nil {
		return nil, err
	}
	out := make([]*v1.GroupMember, 0, len(servers))
	for _, s := range servers {
		var id uint32
		fmt.Sscan(string(s.ID), &id)
		out = append(out, &v1.GroupMember{NodeId: id, Voter: s.Suffrage == raft.Voter})
	}
	return out, nil
}

func isVoter(ms []*v1.GroupMember, id metadata.NodeID) bool {
	for _, m := range ms {
		if m.NodeId == id && m.Voter {
			return true
		}
	}
	return false
}

func isMember(ms []*v1.GroupMember, id metadata.NodeID) bool {
	for _, m := range ms {
		if m.NodeId == id {
			return true
		}
	}
	return false
}

// changeAttemptTimeout bounds one membership change at one leader.
const changeAttemptTimeout = 10 * time.Second

// changeReplicas runs a membership change on the group's leader, wherever
// it is: the metadata's leader first, then whoever a NOT_LEADER answer
// names, retrying while leadership moves, within ctx.
func (b *Broker) changeReplicas(ctx context.Context, t metadata.Topic, p int32, op v1.ChangeReplicasRequest_Op, node metadata.NodeID) ([]*v1.GroupMember, error) {
	group := t.GroupName(p)
	req := &v1.ChangeReplicasRequest{Group: group, Op: op, NodeId: node}
	var hint metadata.NodeID
	backoff := 50 * time.Millisecond
	for {
		target := hint
		if target == 0 {
			if local, ok := b.replicas.get(group); ok && local.IsLeader() {
				target = b.cfg.NodeID
			} else if cur, ok := b.meta.Topic(t.Name); ok && int(p) < len(cur.Assignments) {
				target = cur.Assignments[p].Leader
			}
		}
		hint = 0
		var err error = apierr.New(v1.ErrorCode_ERROR_CODE_UNAVAILABLE, "%s/%d has no known leader", t.Name, p)
		if target != 0 {
			var resp *v1.ChangeReplicasResponse
			actx, cancel := context.WithTimeout(ctx, changeAttemptTimeout)
			if target == b.cfg.NodeID {
				resp, err = b.ChangeReplicas(actx, req)
			} else if ic, ierr := b.internalClient(target); ierr == nil {
				resp, err = ic.ChangeReplicas(actx, req)
			} else {
				err = ierr
			}
			cancel()
			err = apierr.FromStatus(err)
			if err == nil {
				return resp.Members, nil
			}
			var e *apierr.Error
			if errors.As(err, &e) && e.Code == v1.ErrorCode_ERROR_CODE_NOT_LEADER && e.LeaderID != 0 && e.LeaderID != target {
				hint = e.LeaderID
				continue
			}
			if ctx.Err() == nil && (errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &e)) {
				err = apierr.New(v1.ErrorCode_ERROR_CODE_UNAVAILABLE, "broker %d: %v", target, err)
			}
			if !apierr.Retriable(err) {
				return nil, err
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
		case <-time.After(backoff):
			backoff = min(2*backoff, time.Second)
		}
	}
}

// groupStates asks the given brokers for their replica of one group, in
// parallel, for up to statusTimeout. Brokers that do not answer, or hold
// no such replica, are missing from the result.
func (b *Broker) groupStates(ctx context.Context, nodes []metadata.NodeID, group string) map[metadata.NodeID]*v1.ReplicaState {
	out := map[metadata.NodeID]*v1.ReplicaState{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	req := &v1.ReplicaStatusRequest{Groups: []string{group}}
	for _, id := range nodes {
		wg.Go(func() {
			var resp *v1.ReplicaStatusResponse
			var err error
			if id == b.cfg.NodeID {
				resp, err = b.ReplicaStatus(ctx, req)
			} else if ic, ierr := b.internalClient(id); ierr == nil {
				resp, err = ic.ReplicaStatus(ctx, req)
			} else {
				err = ierr
			}
			if err != nil || len(resp.Replicas) == 0 {
				return
			}
			mu.Lock()
			out[id] = resp.Replicas[0]
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// leaderState is the state of the replica that leads, in the highest
// term, or nil.
func leaderState(states map[metadata.NodeID]*v1.ReplicaState) *v1.ReplicaState {
	var lead *v1.ReplicaState
	for _, st := range states {
		if st.Role == "leader" && (lead == nil || st.Term > lead.Term) {
			lead = st
		}
	}
	return lead
}

// assignment looks up a partition, or says why it does not exist.
func (b *Broker) assignment(topic string, p int32) (metadata.Topic, metadata.Assignment, error) {
	t, ok := b.meta.Topic(topic)
	if !ok {
		return t, metadata.Assignment{}, apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN_TOPIC, "topic %q does not exist", topic)
	}
	if p < 0 || int(p) >= len(t.Assignments) {
		return t, metadata.Assignment{}, apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN_PARTITION, "topic %q has partitions 0 to %d, not %d", topic, len(t.Assignments)-1, p)
	}
	return t, t.Assignments[p], nil
}

// pollInterval is how often partition admin re-checks a remote condition.
const pollInterval = 50 * time.Millisecond

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
