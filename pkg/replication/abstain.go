package replication

import (
	"errors"
	"fmt"
	"sync"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"

	"github.com/stratalog/strata/pkg/segment"
)

// Abstaining after damage.
//
// Raft's safety rests on every replica keeping what it acknowledged: a
// vote says "my log is at least this long", and a majority of acks says
// "a majority holds this entry, so any future leader will". A replica whose
// log lost acknowledged entries (segment recovery cut damage below the
// tail: segment.Log.DamagedThrough; or no snapshot covers a log whose
// start retention deleted, so the log had to go) breaks both: with one
// more fault it could elect, or become, a leader lacking entries clients
// were told are committed.
//
// So such a replica abstains until its log reaches the raft index it had
// reached before (the damage mark, persisted by segment before the cut):
//
//  1. it answers RequestVote and RequestPreVote with "not granted" (at the
//     candidate's own term, so the candidate neither counts it nor steps
//     down), and TimeoutNow with an error, so it is never made leader by a
//     transfer; except that a candidate whose log ends at or past the
//     mark's (term, index), in raft's order, holds everything this replica
//     ever acknowledged, and is voted for as raft would have with the
//     intact log (the mark keeps the term for this: segment.DamageMark).
//     Without it, a damaged replica of a two-replica group whose healthy
//     peer restarts would leave the group leaderless for good: the peer
//     needs its vote, and it can be refilled only by a leader. A mark with
//     an unknown term (an older version's) votes for no one;
//  2. it asks no one for votes (its own RequestVote and RequestPreVote
//     fail), so it cannot win an election of its own, and the broker's
//     elector skips it (Successor.Candidacy);
//  3. it follows the leader as usual: raft finds its log shorter and sends
//     the missing entries (or installs a snapshot and the log is copied);
//     it acknowledges only entries it stored, which is honest;
//  4. once its last index reaches the mark, the mark is cleared, durably,
//     and it votes again.
//
// A replica that is the group's only one has no one to fetch from: the
// group refuses to start (ErrNoHealthyCopy) and waits for an operator,
// rather than elect itself and give new records the offsets of lost ones.
//
// The filter wraps the group's raft.Transport only when the group starts
// damaged, so a healthy group costs nothing: a damaged one costs a
// goroutine that forwards its RPCs to raft until it closes.
//
// Rejected: letting the damaged replica vote on its truncated log. Raft's
// "at least as up to date" check compares the candidate's log with the
// voter's, and the voter's is no longer what it acknowledged.

// abstainTransport is a raft.Transport that refuses votes while abstain
// reports true (see above). Everything else passes through.
type abstainTransport struct {
	raft.Transport
	id      raft.ServerID
	addr    raft.ServerAddress
	abstain func() bool
	// mark is the damage mark: a candidate whose log reaches it is voted
	// for (see above).
	mark    func() (index, term uint64)
	rpcs    chan raft.RPC
	stop    chan struct{}
	stopped sync.Once
	done    chan struct{}
}

var (
	_ raft.WithClose   = (*abstainTransport)(nil)
	_ raft.WithPreVote = (*abstainTransport)(nil)
)

// errAbstaining is what an abstaining replica answers a TimeoutNow with,
// and what its own vote requests fail with.
var errAbstaining = errors.New("replication: this replica's log lost acknowledged entries to damage; it does not vote or lead until it has fetched them again")

func newAbstainTransport(inner raft.Transport, id raft.ServerID, abstain func() bool, mark func() (index, term uint64)) *abstainTransport {
	t := &abstainTransport{
		Transport: inner, id: id, addr: inner.LocalAddr(), abstain: abstain, mark: mark,
		rpcs: make(chan raft.RPC), stop: make(chan struct{}), done: make(chan struct{}),
	}
	go t.forward()
	return t
}

// Consumer implements raft.Transport.
func (t *abstainTransport) Consumer() <-chan raft.RPC { return t.rpcs }

// forward hands the inner transport's RPCs to raft, answering votes itself
// while abstaining. One goroutine, so the order of RPCs is kept.
func (t *abstainTransport) forward() {
	defer close(t.done)
	in := t.Transport.Consumer()
	for {
		select {
		case rpc := <-in:
			if t.abstain() && t.refuse(rpc) {
				continue
			}
			select {
			case t.rpcs <- rpc:
			case <-t.stop:
				rpc.Respond(nil, raft.ErrRaftShutdown)
				return
			}
		case <-t.stop:
			return
		}
	}
}

// refuse answers rpc itself if it asks for a vote or leadership, unless it
// is a vote for a candidate that holds the damaged range (covers).
func (t *abstainTransport) refuse(rpc raft.RPC) bool {
	hdr := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(t.id), Addr: []byte(t.addr)}
	switch req := rpc.Command.(type) {
	case *raft.RequestVoteRequest:
		if t.covers(req.LastLogTerm, req.LastLogIndex) {
			return false
		}
		rpc.Respond(&raft.RequestVoteResponse{RPCHeader: hdr, Term: req.Term, Granted: false}, nil)
	case *raft.RequestPreVoteRequest:
		if t.covers(req.LastLogTerm, req.LastLogIndex) {
			return false
		}
		rpc.Respond(&raft.RequestPreVoteResponse{RPCHeader: hdr, Term: req.Term, Granted: false}, nil)
	case *raft.TimeoutNowRequest:
		rpc.Respond(nil, errAbstaining)
	default:
		return false
	}
	return true
}

// covers reports whether a candidate whose log ends at (term, index) holds
// every entry this replica held before the damage: its last entry is at
// or past the mark's in raft's order (a later term, or the same term and
// an index at least the mark's). An unknown mark term covers nothing.
func (t *abstainTransport) covers(term, index uint64) bool {
	markIndex, markTerm := t.mark()
	if markTerm == 0 {
		return false
	}
	return term > markTerm || term == markTerm && index >= markIndex
}

// RequestVote implements raft.Transport: an abstaining replica asks for no
// votes.
func (t *abstainTransport) RequestVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	if t.abstain() {
		return errAbstaining
	}
	return t.Transport.RequestVote(id, target, args, resp)
}

// RequestPreVote implements raft.WithPreVote (the group disables pre-vote
// when the inner transport lacks it).
func (t *abstainTransport) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	if t.abstain() {
		return errAbstaining
	}
	pv, ok := t.Transport.(raft.WithPreVote)
	if !ok {
		return errors.New("replication: transport does not support pre-vote")
	}
	return pv.RequestPreVote(id, target, args, resp)
}

// Close implements raft.WithClose: it stops forwarding and closes the inner
// transport if it can be closed (raft closes its transport at shutdown).
func (t *abstainTransport) Close() error {
	t.halt()
	if c, ok := t.Transport.(raft.WithClose); ok {
		return c.Close()
	}
	return nil
}

// halt stops the forwarding goroutine and waits for it.
func (t *abstainTransport) halt() {
	t.stopped.Do(func() { close(t.stop) })
	<-t.done
}

// abstaining reports whether the log is still short of the damage mark.
func (s *LogStore) abstaining() bool {
	m := s.abstainUntil.Load()
	return m != 0 && s.log.LastIndex() < m
}

// AbstainUntil is the raft index this replica's log must reach before it
// votes again, 0 when it is not abstaining.
func (s *LogStore) AbstainUntil() uint64 {
	if !s.abstaining() {
		return 0
	}
	return s.abstainUntil.Load()
}

// refilled clears the damage mark once the log reaches it. Caller holds
// wmu (it is the log's writer).
func (s *LogStore) refilled() {
	m := s.abstainUntil.Load()
	if m == 0 || s.log.LastIndex() < m {
		return
	}
	if !s.syncEach {
		// Interval fsync: the refilled entries must be durable before the
		// mark that makes the replica wait for them goes.
		if err := s.log.Sync(); err != nil {
			s.logger.Warn("replication: cannot sync the refilled log; the damage mark stays", zap.Error(err))
			return
		}
	}
	if err := s.log.ClearDamage(); err != nil {
		// Still abstaining after a restart, until the next clear: safe.
		s.logger.Warn("replication: cannot clear the damage mark", zap.Error(err))
		return
	}
	s.abstainUntil.Store(0)
	s.logger.Info("replication: the damaged range is fetched back; this replica votes again",
		zap.Uint64("through_index", m))
}

// abstainIfDamaged checks the log's damage mark at start: a mark the log
// already reaches is cleared (a crash cut the clear short); one it does not
// makes the group abstain behind a filtering transport, or, for a sole
// replica, fails with ErrNoHealthyCopy. It returns the transport raft gets.
func abstainIfDamaged(cfg GroupConfig, l *segment.Log, store *LogStore, rc *raft.Config, sole bool, logger *zap.Logger) (raft.Transport, *abstainTransport, error) {
	m := l.DamagedThrough()
	if m == 0 {
		return cfg.Transport, nil, nil
	}
	store.abstainUntil.Store(m)
	if l.LastIndex() >= m {
		store.refilled()
		return cfg.Transport, nil, nil
	}
	if sole {
		logger.Error("replication: the log lost acknowledged entries and this is the only replica: not starting; an operator must restore them or accept the loss (docs/operations.md, \"Damaged logs\")",
			zap.Uint64("lost_from_index", l.LastIndex()+1), zap.Uint64("lost_through_index", m))
		return nil, nil, fmt.Errorf("entries %d..%d: %w", l.LastIndex()+1, m, ErrNoHealthyCopy)
	}
	logger.Error("replication: the log lost acknowledged entries; this replica does not vote until it has fetched them from the leader",
		zap.Uint64("lost_from_index", l.LastIndex()+1), zap.Uint64("lost_through_index", m))
	if _, ok := cfg.Transport.(raft.WithPreVote); !ok {
		rc.PreVoteDisabled = true
	}
	t := newAbstainTransport(cfg.Transport, cfg.NodeID, store.abstaining, l.DamageMark)
	return t, t, nil
}

// AbstainUntil is the raft index the replica's log must reach again
// before it votes (its log lost acknowledged entries); 0 when healthy.
func (g *Group) AbstainUntil() uint64 { return g.store.AbstainUntil() }
