package client

import (
	"context"
	"errors"
	"io"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
)

// TransferLeader hands a partition's leadership to the replica on broker
// to (which must be an in-sync voter) and returns the new leader once it
// is elected. Any broker can take the call. The cluster's rebalancer later
// hands leadership back to the preferred replica (the first listed) if
// that is another live broker.
func (a *Admin) TransferLeader(ctx context.Context, topic string, partition int32, to uint32) (uint32, error) {
	var resp *v1.TransferLeaderResponse
	err := a.c.call(ctx, func(ctx context.Context, cl v1.StrataClient) (err error) {
		resp, err = cl.TransferLeader(ctx, &v1.TransferLeaderRequest{Topic: topic, Partition: partition, To: to})
		return err
	})
	a.c.meta.invalidate()
	return resp.GetLeader(), err
}

// MovePartition changes a partition's replicas to the given brokers (the
// first is the preferred leader): new replicas are added and caught up
// before old ones are removed, so the partition stays available and loses
// nothing. progress (may be nil) is called with each step, from this
// goroutine. It returns once the move is done, or with the error that
// stopped it, which names the step; the partition is then consistent and
// running the same move again finishes it.
//
// ctx bounds the whole move (a large partition may take long to copy);
// cancelling it stops the move after its current step.
func (a *Admin) MovePartition(ctx context.Context, topic string, partition int32, replicas []uint32, progress func(MoveProgress)) error {
	req := &v1.MovePartitionRequest{Topic: topic, Partition: partition, Replicas: replicas}
	err := a.follow(ctx, func(ctx context.Context, cl v1.StrataClient) (progressStream, error) {
		return cl.MovePartition(ctx, req)
	}, progress)
	a.c.meta.invalidate()
	return err
}

// DecommissionBroker moves every partition replica off broker node, one
// partition at a time, so that it can be shut down for good. progress is
// called with each step; Done and Total count partitions. If some
// partition has no broker to take the replica, it fails before moving
// anything. After a failure, running it again carries on.
func (a *Admin) DecommissionBroker(ctx context.Context, node uint32, progress func(MoveProgress)) error {
	req := &v1.DecommissionBrokerRequest{NodeId: node}
	err := a.follow(ctx, func(ctx context.Context, cl v1.StrataClient) (progressStream, error) {
		return cl.DecommissionBroker(ctx, req)
	}, progress)
	a.c.meta.invalidate()
	return err
}

type progressStream interface {
	Recv() (*v1.MoveProgress, error)
}

// follow opens a progress stream on any broker and reads it to its end.
// Until the first message, retriable failures (a broker unreachable, not
// ready) try the next broker within the client's RetryTimeout; once the
// operation has started, a failure is returned as it is: re-running it is
// the caller's decision.
func (a *Admin) follow(ctx context.Context, open func(context.Context, v1.StrataClient) (progressStream, error), progress func(MoveProgress)) error {
	deadline := time.Now().Add(a.c.cfg.retryTimeout)
	backoff := a.c.cfg.backoffMin
	for attempt := 0; ; attempt++ {
		started, err := a.followOnce(ctx, attempt, open, progress)
		if err == nil || started || !retriable(err) || ctx.Err() != nil || time.Now().Add(backoff).After(deadline) {
			return err
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
		backoff = min(2*backoff, a.c.cfg.backoffMax)
	}
}

func (a *Admin) followOnce(ctx context.Context, attempt int, open func(context.Context, v1.StrataClient) (progressStream, error), progress func(MoveProgress)) (started bool, err error) {
	cl, _, err := a.c.anyConn(attempt)
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := open(ctx, cl)
	if err != nil {
		return false, apierr.FromStatus(err)
	}
	for {
		p, err := s.Recv()
		if err == io.EOF {
			return true, nil
		}
		if err != nil {
			return started, apierr.FromStatus(err)
		}
		started = true
		if progress != nil {
			progress(moveProgressFromProto(p))
		}
	}
}
