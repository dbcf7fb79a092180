package broker

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/stratalog/strata/pkg/metadata"
)

// leaderNews carries "this broker now leads partition X" from partition
// groups (whose callbacks must not block) to the metadata, coalesced per
// partition, so that every broker can route clients to leaders it does not
// host.
type leaderNews struct {
	mu      sync.Mutex
	pending map[string]leaderItem
	wake    chan struct{}
}

type leaderItem struct {
	topic, topicID string
	partition      int32
}

func (n *leaderNews) init() {
	n.pending = map[string]leaderItem{}
	n.wake = make(chan struct{}, 1)
}

func (n *leaderNews) publish(topic, topicID string, p int32, group string) {
	n.mu.Lock()
	n.pending[group] = leaderItem{topic, topicID, p}
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func (n *leaderNews) take() map[string]leaderItem {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := n.pending
	n.pending = map[string]leaderItem{}
	return out
}

// runLeaderNews publishes leaderships to the metadata, with the group's
// term so stale news never wins; failures are retried.
func (b *Broker) runLeaderNews(ctx context.Context) {
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.leaders.wake:
		case <-retry.C:
		}
		for group, it := range b.leaders.take() {
			part, ok := b.replicas.get(group)
			if !ok || !part.IsLeader() {
				continue
			}
			st := part.Group().Status()
			t, ok := b.meta.Topic(it.topic)
			if ok && t.ID == it.topicID && int(it.partition) < len(t.Assignments) {
				a := t.Assignments[it.partition]
				if a.Leader == b.cfg.NodeID && a.LeaderTerm == st.Term {
					continue // already known
				}
			}
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := b.applyMeta(cctx, metadata.SetLeader{Topic: it.topic, TopicID: it.topicID, Partition: it.partition, Leader: b.cfg.NodeID, Term: st.Term})
			cancel()
			if err != nil {
				b.log.Debug("publishing leadership failed; will retry", zap.String("group", group), zap.Error(err))
				b.leaders.publish(it.topic, it.topicID, it.partition, group)
			}
		}
	}
}

// raftAddrOf is a registered broker's Raft address, "" if unknown.
func (b *Broker) raftAddrOf(id metadata.NodeID) string {
	br, _ := b.meta.Broker(id)
	return br.RaftAddr
}
