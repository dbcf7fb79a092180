package broker

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"

	"github.com/stratalog/strata/pkg/replication"
)

// onPeerDown runs when the raft transport found a peer broker's process
// gone (a connection to it failed and its raft port refuses connections).
// For every partition that broker led, and for the metadata quorum if it
// led that, this broker's replica campaigns when its turn comes
// (replication.Successor): the first successor at once, the second a
// heartbeat interval later if there is still no leader, and so on. So
// produce resumes well under a second after a leader's broker is killed,
// instead of one to three heartbeat timeouts.
func (b *Broker) onPeerDown(ctx context.Context, peer raft.ServerAddress) {
	if !b.started.Load() {
		return // Start has not finished: nothing here to elect yet
	}
	// ctx ends when the Mux closes; a group closing meanwhile refuses its
	// campaign at once (transport.Campaign watches the group's Transport).
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()

	now := time.Now()
	var turns [][]candidate // by rank
	add := func(name string, s replication.Successor) {
		c, ok, err := s.Candidacy(peer, now)
		if err != nil {
			b.log.Debug("no early election: cannot read the group's configuration", zap.String("group", name), zap.Error(err))
		}
		if !ok {
			return
		}
		for len(turns) <= c.Rank {
			turns = append(turns, nil)
		}
		turns[c.Rank] = append(turns[c.Rank], candidate{name, s, c})
	}
	add("metadata", b.meta.Successor())
	for _, p := range b.replicas.all() {
		if g := p.Group(); g != nil {
			add(p.GroupName(), g.Successor())
		}
	}

	step := heartbeatInterval(b.raftCfg())
	var campaigned atomic.Int64
	for rank, cands := range turns {
		if rank > 0 {
			t := time.NewTimer(step)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		// Concurrently: a group whose raft is busy must not hold up the
		// others' elections.
		var wg sync.WaitGroup
		for _, c := range cands {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := c.s.Campaign(ctx, c.c)
				if err != nil {
					b.log.Info("early election not started", zap.String("group", c.name), zap.String("gone_leader", string(peer)), zap.Error(err))
				}
				if ok {
					campaigned.Add(1)
					b.metrics.earlyElections.Inc()
				}
			}()
		}
		wg.Wait()
	}
	if n := campaigned.Load(); n > 0 {
		b.log.Info("peer broker is down: started elections for groups it led",
			zap.String("peer", string(peer)), zap.Int64("elections", n), zap.Duration("took", time.Since(now)))
	}
}

// candidate is one group's turn in onPeerDown.
type candidate struct {
	name string
	s    replication.Successor
	c    replication.Candidacy
}
