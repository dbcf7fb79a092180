package replication

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// Read leases: a leader answers reads only while it knows it still leads.
//
// raft's State() says what this replica believes, not what the others
// do. A leader that an election deposed without its hearing of it (its
// heartbeats to each voter are seconds apart when raft's timers are
// scaled up, as the broker does) believes it leads until a voter answers
// one with a higher term, or raft's own lease runs out: up to ten heartbeat
// timeouts in the broker. Reads it serves meanwhile can be stale: the new
// leader has committed records this one lacks, and a consumer group
// coordinated from this one's memory has moved on elsewhere. Writes are
// safe regardless: committing needs a majority in the current term.
//
// So reads ask ReadLease first. A lease is this replica's own evidence
// that a majority of the group's voters acknowledged it as leader of its
// current term, held for GroupConfig.ReadLease from when the evidence was
// asked for, by the monotonic clock:
//
//	evidence                                    asked for at
//	  raft.VerifyLeader answered (a majority      its call
//	    answered heartbeats of this term)
//	  an entry of this term committed (Apply,     the entry's queueing
//	    the barrier of a new leader)
//
// The bound: a voter that acknowledged term T at time t votes in a later
// term only after t, and a successor needs a majority, which shares a voter
// with any majority that acknowledged this leader. So this leader's lease
// ends at most ReadLease (plus the round trip of a heartbeat answered just
// after the verification began) after its successor was elected: reads are
// stale by at most that much. A lease also ends at once when raft stops
// calling this replica leader or its term changes.
//
// A read that finds no lease waits for a verification: up to a heartbeat
// round (the transport sends rounds every third of a heartbeat timeout)
// and a round trip. A read that finds less than half a lease left starts
// one in the background, so a partition read steadily, or written to, never
// waits. An idle leader verifies nothing.

// DefaultReadLease is GroupConfig.ReadLease's default.
const DefaultReadLease = time.Second

// lease is a Group's read lease.
type lease struct {
	mu        sync.Mutex
	term      uint64        // the term the lease is for
	until     time.Time     // monotonic: the lease holds while time.Now() is before it
	verifying chan struct{} // closed when the verification in flight ends; nil if none
}

// extendLease records evidence of leadership in term asked for at t0:
// the lease holds until t0 + ReadLease, if that is later than it did.
func (g *Group) extendLease(term uint64, t0 time.Time) {
	until := t0.Add(g.cfg.ReadLease)
	g.lease.mu.Lock()
	defer g.lease.mu.Unlock()
	if term > g.lease.term || term == g.lease.term && until.After(g.lease.until) {
		g.lease.term, g.lease.until = term, until
	}
}

// leaseLeft returns how much of the lease is left now (<= 0: none).
func (g *Group) leaseLeft(now time.Time) time.Duration {
	term := g.raft.CurrentTerm()
	g.lease.mu.Lock()
	defer g.lease.mu.Unlock()
	if g.lease.term != term {
		return 0
	}
	return g.lease.until.Sub(now)
}

// ReadLease returns nil when this replica may answer reads as leader: it is
// the leader and ready (IsLeader), and holds a read lease (see above). When
// it leads but holds no lease it confirms its leadership with the voters
// and waits for that, up to ctx. Errors: *NotLeaderError (not the leader:
// retry at the hint), ErrNoLease (the voters did not confirm it in time),
// ErrShutdown, or ctx's error.
func (g *Group) ReadLease(ctx context.Context) error {
	if !g.IsLeader() {
		return g.convert(ctx, raft.ErrNotLeader, false)
	}
	left := g.leaseLeft(time.Now())
	if left > g.cfg.ReadLease/2 {
		return nil
	}
	done, err := g.verify()
	if err != nil {
		return err
	}
	if left > 0 {
		return nil // valid still; the verification renews it meanwhile
	}
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	switch {
	case !g.IsLeader():
		return g.convert(ctx, raft.ErrNotLeader, false)
	case g.leaseLeft(time.Now()) <= 0:
		return ErrNoLease
	}
	return nil
}

// RenewReadLease starts confirming this leader's leadership if it holds
// less than half a read lease and no confirmation is in flight, and returns
// at once. A caller about to check many groups' leases calls it on each
// first, so that their confirmations overlap (and share heartbeat rounds)
// instead of running one after another.
func (g *Group) RenewReadLease() {
	if g.IsLeader() && g.leaseLeft(time.Now()) <= g.cfg.ReadLease/2 {
		g.verify() // ErrShutdown: the read will say so
	}
}

// verify starts a leadership verification unless one is in flight, and
// returns a channel closed when the one in flight ends. It runs on a
// goroutine counted like a call (Close waits for it), bounded by
// verifyTimeout.
func (g *Group) verify() (<-chan struct{}, error) {
	g.lease.mu.Lock()
	defer g.lease.mu.Unlock()
	if g.lease.verifying != nil {
		return g.lease.verifying, nil
	}
	if !g.enter() {
		return nil, ErrShutdown
	}
	done := make(chan struct{})
	g.lease.verifying = done
	term, t0 := g.raft.CurrentTerm(), time.Now()
	go func() {
		defer g.leave()
		defer func() {
			g.lease.mu.Lock()
			g.lease.verifying = nil
			g.lease.mu.Unlock()
			close(done)
		}()
		ctx, cancel := context.WithTimeout(context.Background(), g.verifyTimeout())
		defer cancel()
		// Close waits for calls in flight: a verification that cannot
		// finish (no majority) must not hold it.
		go func() {
			select {
			case <-g.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		if _, err := g.wait(ctx, g.raft.VerifyLeader()); err != nil {
			g.logger.Debug("replication: leadership not confirmed", zap.Error(err))
			return
		}
		g.extendLease(term, t0)
	}()
	return done, nil
}

// verifyTimeout bounds a verification: raft answers one only when a
// majority answered, or when it stops leading (its own lease, much
// longer).
func (g *Group) verifyTimeout() time.Duration { return 3 * g.cfg.ReadLease }
