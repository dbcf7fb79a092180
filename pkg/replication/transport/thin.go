package transport

import (
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Heartbeat thinning: answering some of raft's heartbeats locally.
//
// Raft (v1.7.3, replication.go heartbeat) sends every follower of every
// group it leads a heartbeat, an AppendEntries with no entries, after
// waiting randomTimeout(HeartbeatTimeout/10), that is HeartbeatTimeout/10
// to HeartbeatTimeout/5 after the previous one returned: a fixed ratio that
// raft does not let us configure. With a thousand groups that is thousands
// of RPCs per second per broker, most of an idle broker's CPU. A group's
// Transport therefore sends only some of them: while the last real
// heartbeat to that peer, for the same term and leader, succeeded less
// than a window W ago, it answers the next one with that real response
// and sends nothing.
//
// What raft does with a heartbeat's answer, and why faking some is safe:
//
//  1. On success the leader sets the follower's last contact to now
//     (followerReplication.setLastContact). Its lease check
//     (checkLeaderLease) steps it down when it has not heard from a quorum
//     within LeaderLeaseTimeout. A fake success comes at most W after a
//     real one returned, so it moves last contact at most W later than
//     raft would have had it: an isolated leader steps down at most W
//     later, after LeaderLeaseTimeout+W instead of LeaderLeaseTimeout.
//     Raft uses the lease for nothing else (no lease reads).
//  2. The follower resets its election timer on each real heartbeat (and
//     on every other AppendEntries); it elects when its last contact is
//     older than HeartbeatTimeout at a check, randomised to 1-2x. Real
//     heartbeats now reach it at most W + HeartbeatTimeout/5 apart instead
//     of HeartbeatTimeout/5, plus the leader's idle AppendEntries every
//     CommitTimeout (1-2x), which are never thinned.
//  3. Raft ignores the term of a heartbeat's answer (only replicateTo acts
//     on a higher term), and only a success with the request's own term is
//     ever reused: an error, a refusal or a higher term drops the cached
//     answer, reaches raft as it came, and the next heartbeat is real.
//  4. Only heartbeats are thinned (isHeartbeat: no entries, no previous
//     entry, no commit index). AppendEntries with entries or a commit
//     index, votes, pre-votes, InstallSnapshot and TimeoutNow always go on
//     the wire.
//
// The window. To keep both margins above, W should be at most a third of
// min(HeartbeatTimeout, LeaderLeaseTimeout); Strata sets the
// lease to half the heartbeat timeout (replication.DefaultRaftConfig, the
// broker's --raft-heartbeat-timeout), so W <= HeartbeatTimeout/6. The
// transport is not told raft's configuration, and the broker's flag goes
// down to 100ms, so a fixed window would be unsafe for some setting. It
// learns HeartbeatTimeout/10 instead: the shortest time raft waited
// between two heartbeats to the peer, over the last thinBlock to
// 2*thinBlock of them (scheduling delays only lengthen waits, so the
// minimum is robust; a ReloadConfig that shortens the timeout shrinks the
// window at its first shorter wait, one that lengthens it grows the window
// within 2*thinBlock heartbeats). The minimum of 32 to 64 waits drawn
// from HeartbeatTimeout/10 to /5 is within a few percent of /10. W is 10/6 of it, capped by
// Options.HeartbeatThinning. Until thinBlock waits are known, every
// heartbeat is real. With the default 1s timeout W is about 166ms and
// raft waits 100-200ms, so about 2 heartbeats in 5 are answered locally.
//
// Rejected: a larger window (1 real heartbeat in 3-5 needs W ~ 400-600ms,
// which at Strata's settings lets an isolated leader keep its lease for
// up to twice LeaderLeaseTimeout and leaves followers 600-800ms without a
// real heartbeat against a 1s election timeout). Also rejected for now: a
// broker-level heartbeat frame carrying every group's heartbeat per tick.
// It would cut the cost per heartbeat rather than their number, needs a
// format change, and raft still calls the transport once per heartbeat.
//
// One weakening to know: raft.VerifyLeader triggers an immediate
// heartbeat round and counts its successes. A thinned one answers from a
// contact up to W old, so VerifyLeader proves leadership as of W ago, not
// now. Strata does not call VerifyLeader; a user of this package who does
// must turn thinning off (Options.HeartbeatThinning < 0).
const (
	// thinBlock is the number of heartbeat waits per block of the
	// estimate of HeartbeatTimeout/10: the estimate is the minimum over
	// the current and the previous block.
	thinBlock = 32
	// thinNum/thinDen: W = thinNum/thinDen of the shortest wait, ~
	// HeartbeatTimeout/6.
	thinNum, thinDen = 10, 6
)

// DefaultHeartbeatThinning is Options.HeartbeatThinning's default cap on
// the window W. The learnt bound, HeartbeatTimeout/6, is the one that
// binds below a 6s heartbeat timeout.
const DefaultHeartbeatThinning = time.Second

// thinner holds one group's thinning state, per peer. It is a
// deterministic core: every decision takes the time as an argument, so it
// is tested without clocks or sockets. Safe for concurrent use; raft calls
// it from one heartbeat goroutine per follower.
type thinner struct {
	max time.Duration // cap on W, > 0

	mu struct {
		sync.Mutex
		peers map[raft.ServerAddress]*thinPeer // allocated when first used: followers never use it
	}
}

// thinPeer is what a group's thinner knows about one peer.
type thinPeer struct {
	// The last real heartbeat that succeeded: its term, leader, when it
	// returned, and its answer. ok is false when there is none to reuse.
	ok     bool
	term   uint64
	leader string
	at     time.Time
	resp   raft.AppendEntriesResponse

	// Raft's waits between heartbeats: when the last one returned (real
	// or answered here), and the shortest wait in the current and the
	// previous block of thinBlock waits (0: not known yet).
	lastEnd         time.Time
	curMin, prevMin time.Duration
	curN            int
}

func newThinner(max time.Duration) *thinner {
	return &thinner{max: max}
}

func (th *thinner) peer(addr raft.ServerAddress) *thinPeer {
	if th.mu.peers == nil {
		th.mu.peers = make(map[raft.ServerAddress]*thinPeer)
	}
	p := th.mu.peers[addr]
	if p == nil {
		p = &thinPeer{}
		th.mu.peers[addr] = p
	}
	return p
}

// heartbeatLeader is the leader a heartbeat names.
func heartbeatLeader(req *raft.AppendEntriesRequest) string {
	if len(req.RPCHeader.Addr) > 0 {
		return string(req.RPCHeader.Addr)
	}
	return string(req.Leader)
}

// window returns W for p: 0 while raft's heartbeat period is not known.
func (th *thinner) window(p *thinPeer) time.Duration {
	if p.prevMin == 0 {
		return 0
	}
	shortest := p.prevMin
	if p.curN > 0 && p.curMin < shortest {
		shortest = p.curMin
	}
	return min(th.max, shortest*thinNum/thinDen)
}

// observeWait records that raft waited from p's last heartbeat until now.
func (p *thinPeer) observeWait(now time.Time) {
	if p.lastEnd.IsZero() {
		return
	}
	wait := now.Sub(p.lastEnd)
	if wait <= 0 {
		wait = 1 // a clock that did not move: the shortest wait there is
	}
	if p.curN == 0 || wait < p.curMin {
		p.curMin = wait
	}
	p.curN++
	if p.curN == thinBlock {
		p.prevMin, p.curN = p.curMin, 0
	}
}

// answer is called when raft sends heartbeat req to addr at now. It
// returns true, with resp filled in from the last real answer, when this
// heartbeat need not be sent; false when it must be, and then the caller
// reports the outcome with sent.
func (th *thinner) answer(addr raft.ServerAddress, req *raft.AppendEntriesRequest, now time.Time, resp *raft.AppendEntriesResponse) bool {
	th.mu.Lock()
	defer th.mu.Unlock()
	p := th.peer(addr)
	p.observeWait(now)
	w := th.window(p)
	if !p.ok || p.term != req.Term || p.leader != heartbeatLeader(req) || now.Sub(p.at) >= w || now.Before(p.at) {
		return false
	}
	*resp = p.resp
	p.lastEnd = now
	return true
}

// sent records the outcome of a real heartbeat to addr that returned at
// end. Only a success for the request's own term is kept for reuse;
// anything else forgets the last answer, so the next heartbeat is real.
func (th *thinner) sent(addr raft.ServerAddress, req *raft.AppendEntriesRequest, end time.Time, resp *raft.AppendEntriesResponse, err error) {
	th.mu.Lock()
	defer th.mu.Unlock()
	p := th.peer(addr)
	p.lastEnd = end
	if err != nil || !resp.Success || resp.Term != req.Term {
		p.ok = false
		return
	}
	p.ok, p.term, p.leader, p.at, p.resp = true, req.Term, heartbeatLeader(req), end, *resp
	// The decoder may reuse these slices' arrays for the next answer.
	p.resp.RPCHeader.ID = append([]byte(nil), resp.RPCHeader.ID...)
	p.resp.RPCHeader.Addr = append([]byte(nil), resp.RPCHeader.Addr...)
}
