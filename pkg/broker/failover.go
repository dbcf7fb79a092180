package broker

import (
	"context"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"

	"github.com/stratalog/strata/pkg/replication"
)

// onPeerDown runs when the raft transport found a peer broker's process
// gone (a connection to it failed and its raft port refuses connections).
// For every partition that broker led, and for the metadata quorum if it
// led that, this broker's replica campaigns
// when its turn comes (replication.Group.SuccessorRank): the first
// successor at once, the second a heartbeat interval later if there is
// still no leader, and so on. So produce resumes well under a second after
// a leader's broker is killed, instead of one to three heartbeat timeouts.
func (b *Broker) onPeerDown(peer raft.ServerAddress) {
	ctx, cancel := context.WithTimeout(b.runCtx, 10*time.Second)
	defer cancel()
	start := time.Now()
	var inLine [][]replication.Successor // by rank
	add := func(s replication.Successor) {
		rank, ok, err := s.Rank(peer)
		if err != nil || !ok {
			return
		}
		for len(inLine) <= rank {
			inLine = append(inLine, nil)
		}
		inLine[rank] = append(inLine[rank], s)
	}
	add(b.meta.Successor())
	for _, p := range b.replicas.all() {
		if g := p.Group(); g != nil {
			add(g.Successor())
		}
	}
	step := heartbeatInterval(b.raftCfg())
	var campaigned int
	for rank, groups := range inLine {
		if rank > 0 {
			t := time.NewTimer(step)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		for _, g := range groups {
			ok, err := g.CampaignIfLeaderless(ctx, peer)
			if err != nil {
				b.log.Debug("no early election after a peer went down", zap.Error(err))
			}
			if ok {
				campaigned++
				b.metrics.earlyElections.Inc()
			}
		}
	}
	if campaigned > 0 {
		b.log.Info("peer broker is down: started elections for partitions it led",
			zap.String("peer", string(peer)), zap.Int("elections", campaigned), zap.Duration("took", time.Since(start)))
	}
}
