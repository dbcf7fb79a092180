package replication

import (
	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// A replica that cannot write its log (a full disk, an I/O error).
//
// Raft steps a leader down when storing its own entries fails, and nothing
// more: the followers, whose leader is alive but silent in this group,
// would wait for raft's own election timeout (20 heartbeat timeouts), and
// the failed replica, its log as long as anyone's, would win the next
// election and fail again. Found with test/chaos/diskfault: a leader's
// full disk stopped writes to the partition for as long as it was full.
// So:
//
//	leader's StoreLogs fails ─► raft steps down ─► watchLeader sees the loss
//	   └ writeFailed set                             └ passLeadership: TimeoutNow
//	                                                   to another voter, which
//	                                                   campaigns at once
//	elector (broker) ─► Successor.Abstaining: no early campaign while the
//	                    last write failed (raft's own timer stays the fallback)
//
// A write that succeeds clears it.

// writeFailing reports whether the last write of the log failed.
func (s *LogStore) writeFailing() bool { return s.writeFailed.Load() }

// passLeadership asks another voter of the group to campaign at once (a
// TimeoutNow request, as raft's leadership transfer sends), after this
// replica stepped down because it cannot write its log. It tries the
// others in configuration order until one accepts.
func (g *Group) passLeadership() {
	if !g.enter() {
		return
	}
	go func() {
		defer g.leave()
		f := g.raft.GetConfiguration()
		if f.Error() != nil {
			return
		}
		for _, sv := range f.Configuration().Servers {
			if sv.ID == g.cfg.NodeID || sv.Suffrage != raft.Voter {
				continue
			}
			if g.raft.State() == raft.Leader {
				return // it leads again: nothing to pass
			}
			req := &raft.TimeoutNowRequest{RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(g.cfg.NodeID), Addr: []byte(g.cfg.Transport.LocalAddr())}}
			var resp raft.TimeoutNowResponse
			err := g.cfg.Transport.TimeoutNow(sv.ID, sv.Address, req, &resp)
			if err == nil {
				g.logger.Warn("this replica cannot write its log: asked another to take over leadership",
					zap.String("to", string(sv.ID)))
				return
			}
			g.logger.Info("could not hand leadership over after a failed log write", zap.String("to", string(sv.ID)), zap.Error(err))
		}
	}()
}

// storeAbstains is Successor.Abstaining: a replica abstains from early
// elections while its log is short of a damage mark (abstain.go) or its
// last write failed.
func (s *LogStore) storeAbstains() bool { return s.abstaining() || s.writeFailing() }
