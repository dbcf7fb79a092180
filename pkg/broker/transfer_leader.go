package broker

import (
	"context"
	"errors"
	"slices"
	"time"

	grpcmd "google.golang.org/grpc/metadata"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/metadata"
	"github.com/stratalog/strata/pkg/replication"
)

// forwardedKey marks a call one broker forwarded to another, so that it is
// not forwarded again (no loops while leadership moves).
const forwardedKey = "strata-forwarded"

// transferTimeout bounds a leadership transfer and the wait for the new
// leader to be elected.
const transferTimeout = 10 * time.Second

// TransferLeader hands a partition's leadership to another replica. It
// runs on the partition's leader: any other broker forwards the call there
// once. Raft first brings the target up to date, so no acknowledged record
// is lost; writes stop meanwhile, so a target that has not taken over
// within a heartbeat timeout is given up and this leader keeps the
// partition (UNAVAILABLE). The answer names the new leader once it is elected. The
// rebalancer later hands leadership back to the preferred replica (the
// first in the assignment) while that broker is alive: to make a move
// stick, reorder the replicas with MovePartition.
//
// Errors: UNKNOWN_TOPIC, UNKNOWN_PARTITION; INVALID_REQUEST if to is not a
// replica or not yet a voter (a replica still being added); NOT_LEADER if
// the leader is unknown or moved meanwhile (retriable); UNAVAILABLE if the
// target did not take over in time (retriable).
func (b *Broker) TransferLeader(ctx context.Context, req *v1.TransferLeaderRequest) (*v1.TransferLeaderResponse, error) {
	resp, err := b.transferLeader(ctx, req)
	return resp, apierr.ToStatus(err)
}

func (b *Broker) transferLeader(ctx context.Context, req *v1.TransferLeaderRequest) (*v1.TransferLeaderResponse, error) {
	t, a, err := b.assignment(req.Topic, req.Partition)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(a.Replicas, req.To) {
		return nil, apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_REQUEST, "broker %d is not a replica of %s/%d (replicas %v)", req.To, req.Topic, req.Partition, a.Replicas)
	}
	part, err := b.leaderFor(req.Topic, req.Partition)
	if err != nil {
		var e *apierr.Error
		if !errors.As(err, &e) || e.Code != v1.ErrorCode_ERROR_CODE_NOT_LEADER || e.LeaderID == 0 || forwarded(ctx) {
			return nil, err
		}
		return b.forwardTransfer(ctx, e.LeaderID, req)
	}
	if req.To == b.cfg.NodeID {
		return &v1.TransferLeaderResponse{Leader: b.cfg.NodeID}, nil
	}
	members, err := groupMembers(part.Group())
	if err != nil {
		return nil, groupError(err)
	}
	if !isVoter(members, req.To) {
		return nil, apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_REQUEST, "broker %d is not a voter of %s/%d yet (a replica being added votes once caught up)", req.To, req.Topic, req.Partition)
	}
	addr := b.raftAddrOf(req.To)
	if addr == "" {
		return nil, apierr.New(v1.ErrorCode_ERROR_CODE_UNAVAILABLE, "broker %d is not registered", req.To)
	}
	ctx, cancel := context.WithTimeout(ctx, transferTimeout)
	defer cancel()
	// Writes stop while raft's transfer runs: give it a heartbeat timeout,
	// then keep the partition here (replication.Group.HandOver).
	if err := part.Group().HandOver(ctx, metadata.ServerID(req.To), raftAddress(addr), b.cfg.RaftHeartbeatTimeout); err != nil {
		if errors.Is(err, replication.ErrHandOverAbandoned) {
			return nil, apierr.New(v1.ErrorCode_ERROR_CODE_UNAVAILABLE,
				"broker %d did not take over %s/%d within %s, so broker %d kept it: the target may be behind or unreachable (strata topic describe %s shows each replica's lag); retry once it is in sync",
				req.To, req.Topic, req.Partition, b.cfg.RaftHeartbeatTimeout, b.cfg.NodeID, req.Topic)
		}
		return nil, groupError(err)
	}
	// The old leader has stepped down; wait for the target to win. Its
	// first heartbeat tells this replica (no call needed); asking the
	// target covers a heartbeat lost on the way.
	group := t.GroupName(req.Partition)
	for {
		if part.Leader() == req.To {
			return &v1.TransferLeaderResponse{Leader: req.To}, nil
		}
		if st := b.groupStates(ctx, []uint32{req.To}, group)[req.To]; st != nil && st.Role == "leader" {
			return &v1.TransferLeaderResponse{Leader: req.To}, nil
		}
		if err := sleepCtx(ctx, pollInterval); err != nil {
			return nil, apierr.New(v1.ErrorCode_ERROR_CODE_UNAVAILABLE, "leadership of %s/%d was handed to broker %d, which has not taken over within %s", req.Topic, req.Partition, req.To, transferTimeout)
		}
	}
}

// forwardTransfer sends the call to the leader's broker, once, through
// its inter-broker listener (peerPublic).
func (b *Broker) forwardTransfer(ctx context.Context, leader metadata.NodeID, req *v1.TransferLeaderRequest) (*v1.TransferLeaderResponse, error) {
	peer, err := b.peerPublic(leader)
	if err != nil {
		return nil, apierr.New(v1.ErrorCode_ERROR_CODE_UNAVAILABLE, "reach the leader, broker %d: %v", leader, err)
	}
	ctx = grpcmd.AppendToOutgoingContext(ctx, forwardedKey, "1")
	resp, err := peer.TransferLeader(ctx, req)
	return resp, apierr.FromStatus(err)
}

// forwarded reports whether another broker forwarded this call.
func forwarded(ctx context.Context) bool {
	md, _ := grpcmd.FromIncomingContext(ctx)
	return len(md.Get(forwardedKey)) > 0
}
