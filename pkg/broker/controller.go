package broker

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/stratalog/strata/pkg/cluster"
	"github.com/stratalog/strata/pkg/metadata"
)

// controlInterval bounds how long the controller waits without a wake-up.
const controlInterval = time.Second

// runController shapes the cluster. Every broker runs it; it acts in two
// cases: before the metadata quorum exists, a broker chosen by
// cluster.BootstrapVoters bootstraps it; on the quorum's leader, it names
// the cluster, registers brokers as gossip sees them, and adds, promotes
// and removes quorum members as cluster.Reconcile says.
func (b *Broker) runController(ctx context.Context) {
	t := time.NewTicker(controlInterval)
	defer t.Stop()
	for {
		metaCh, memCh := b.meta.Changed(), b.members.Changed()
		b.controlOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-metaCh:
		case <-memCh:
		case <-t.C:
		}
	}
}

func (b *Broker) controlOnce(ctx context.Context) {
	members := b.members.Members()
	if !b.meta.HasState() {
		n := b.cfg.Expect()
		if n == 0 {
			return // joining: the leader adds us
		}
		voters, ok := cluster.BootstrapVoters(cluster.NodeID(b.cfg.NodeID), members, n)
		if !ok {
			b.logBootstrapWait(members, n)
			return
		}
		b.waitingFor.Store(nil)
		addrs := map[metadata.NodeID]string{}
		for _, m := range voters {
			addrs[uint32(m.NodeID)] = m.RaftAddr
		}
		b.log.Info("bootstrapping the metadata quorum", zap.Any("voters", addrs))
		fresh := !b.meta.HasState()
		if err := b.meta.Bootstrap(addrs); err != nil {
			b.log.Error("bootstrap failed", zap.Error(err))
		} else if fresh {
			b.bootstrapped("metadata") // its first voter campaigns at once
		}
		return
	}
	if !b.meta.IsLeader() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if b.meta.ClusterID() == "" {
		if err := b.meta.Apply(ctx, metadata.InitCluster{ClusterID: metadata.NewID()}); err != nil {
			b.log.Warn("naming the cluster", zap.Error(err))
			return
		}
	}
	registered := map[metadata.NodeID]metadata.Broker{}
	for _, br := range b.meta.Brokers() {
		registered[br.ID] = br
	}
	for _, m := range members {
		if m.State != cluster.Alive {
			continue
		}
		want := metadata.Broker{ID: uint32(m.NodeID), APIAddr: m.APIAddr, RaftAddr: m.RaftAddr, HTTPAddr: m.HTTPAddr, Listeners: m.Listeners}
		if !registered[want.ID].Equal(want) {
			if err := b.meta.Apply(ctx, metadata.RegisterBroker{Broker: want}); err != nil {
				b.log.Warn("registering a broker", zap.Uint32("node", want.ID), zap.Error(err))
				return
			}
		}
	}
	voters, err := b.meta.Configuration()
	if err != nil {
		return
	}
	config := make([]cluster.Server, len(voters))
	for i, v := range voters {
		config[i] = cluster.Server{ID: cluster.NodeID(v.ID), Voter: v.Voter}
	}
	for _, a := range cluster.Reconcile(config, members) {
		id := uint32(a.Member.NodeID)
		var err error
		switch a.Kind {
		case cluster.AddVoter:
			err = b.meta.AddVoter(ctx, id, a.Member.RaftAddr)
		case cluster.AddNonvoter:
			err = b.meta.AddNonvoter(ctx, id, a.Member.RaftAddr)
		case cluster.Remove:
			err = b.meta.RemoveServer(ctx, id)
		}
		b.log.Info("metadata quorum change", zap.Stringer("action", a.Kind), zap.Uint32("node", id), zap.Error(err))
		if err != nil {
			return
		}
	}
}

// bootstrapWaitEvery spaces the "waiting for peers" lines.
const bootstrapWaitEvery = 10 * time.Second

// logBootstrapWait says, at most every bootstrapWaitEvery, which brokers
// this one sees and how many it waits for before the cluster can start
// (--bootstrap-expect), so an operator sees a missing --join or a
// mismatched --bootstrap-expect instead of silence.
//
// It also keeps, at every call, the same facts in words for /readyz and
// the API's not-ready error (bootstrapWaitReason): a client or a probe
// asking a waiting broker learns whom it has and whom it waits for.
func (b *Broker) logBootstrapWait(members []cluster.Member, n int) {
	var seen []string
	for _, m := range members {
		if m.State == cluster.Alive {
			seen = append(seen, fmt.Sprintf("%d@%s", m.NodeID, m.GossipAddr))
		}
	}
	join := "--join is not set"
	if len(b.cfg.Join) > 0 {
		join = "--join " + strings.Join(b.cfg.Join, ",")
	}
	why := fmt.Sprintf("waiting for brokers to start the cluster: --bootstrap-expect %d, sees %d (%s); %s", n, len(seen), strings.Join(seen, ", "), join)
	b.waitingFor.Store(&why)
	now := time.Now()
	if now.Sub(b.bootstrapWaitLogged) < bootstrapWaitEvery {
		return
	}
	b.bootstrapWaitLogged = now
	b.log.Info("waiting for brokers to start the cluster: --bootstrap-expect brokers (with the same value) must see each other through gossip; check --join on each",
		zap.Int("expect", n), zap.Int("alive", len(seen)), zap.Strings("seen", seen), zap.Strings("join", b.cfg.Join))
}

// bootstrapWaitReason is why the broker is not ready while it waits for
// bootstrap peers, or "" when it does not wait for them.
func (b *Broker) bootstrapWaitReason() string {
	if why := b.waitingFor.Load(); why != nil {
		return *why
	}
	return ""
}
