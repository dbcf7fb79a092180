package broker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/metadata"
	"github.com/stratalog/strata/pkg/partition"
	"github.com/stratalog/strata/pkg/replication"
)

// replicas are the partition replicas open on this broker, by Raft group
// name. The metadata says which should exist; runReplicas makes it so.
type replicas struct {
	mu struct {
		sync.RWMutex
		byGroup map[string]*replica
		damaged map[string]damagedReplica // not opened: see damaged.go
	}
}

type replica struct {
	p      *partition.Partition
	topic  metadata.Topic // as of the last reconcile
	config metadata.TopicConfig
}

func (rs *replicas) init() {
	rs.mu.byGroup = map[string]*replica{}
	rs.mu.damaged = map[string]damagedReplica{}
}

func (rs *replicas) get(group string) (*partition.Partition, bool) {
	rs.mu.RLock()
	defer rs.mu.RUnlock()
	r, ok := rs.mu.byGroup[group]
	if !ok {
		return nil, false
	}
	return r.p, true
}

func (rs *replicas) all() []*partition.Partition {
	rs.mu.RLock()
	defer rs.mu.RUnlock()
	out := make([]*partition.Partition, 0, len(rs.mu.byGroup))
	for _, r := range rs.mu.byGroup {
		out = append(out, r.p)
	}
	return out
}

// closeParallel bounds how many replicas close at once: closing one waits
// for its Raft goroutines and fsyncs its log, so a broker with a thousand
// partitions would take minutes one by one.
const closeParallel = 64

func (rs *replicas) closeAll() error {
	rs.mu.Lock()
	all := rs.mu.byGroup
	rs.mu.byGroup = map[string]*replica{}
	rs.mu.Unlock()
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, closeParallel)
	)
	for g, r := range all {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := r.p.Close(); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("close %s: %w", g, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// partitionDir is where a partition replica's files live:
// <data>/topics/<name>-<topic id>/<p> (metadata.PartitionDir), refused if
// the name or id would lead outside the data directory.
func (b *Broker) partitionDir(t metadata.Topic, p int32) (string, error) {
	return metadata.PartitionDir(b.cfg.DataDir, t, p)
}

// runReplicas keeps the open replicas in line with the metadata: opens the
// ones placed here, closes and deletes the ones moved away or deleted, and
// applies config changes.
func (b *Broker) runReplicas(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		ch := b.meta.Changed()
		b.reconcileReplicas()
		b.updateReady()
		select {
		case <-ctx.Done():
			return
		case <-ch:
		case <-t.C:
		}
	}
}

// updateReady: the broker is ready once the metadata quorum has a leader,
// this broker has its copy of the cluster's identity and is registered.
func (b *Broker) updateReady() {
	leader, _ := b.meta.Leader()
	// Registered with the addresses of this run: after a restart on other
	// ports, the old record would send clients elsewhere.
	me, ok := b.meta.Broker(b.cfg.NodeID)
	b.ready.Store(leader != 0 && b.meta.ClusterID() != "" && ok && me.APIAddr == b.api[0].l.Advertised &&
		// (a controller older than named listeners registers none)
		(len(me.Listeners) == 0 || maps.Equal(me.Listeners, b.advertisedListeners())))
}

func (b *Broker) reconcileReplicas() {
	me := b.cfg.NodeID
	want := map[string]bool{}
	brokers := map[metadata.NodeID]metadata.Broker{}
	var raftAddrs []raft.ServerAddress
	for _, br := range b.meta.Brokers() {
		brokers[br.ID] = br
		if br.ID != me && br.RaftAddr != "" {
			raftAddrs = append(raftAddrs, raft.ServerAddress(br.RaftAddr))
		}
	}
	// Every other broker is pulsed, so that a silent one shows at once
	// whichever groups it shares with this one (failover.go).
	b.mux.Watch(raftAddrs...)
	for _, t := range b.meta.Topics() {
		cfg, err := metadata.ParseTopicConfig(t.Config, b.cfg.TopicDefaults)
		if err != nil {
			b.log.Error("topic has an invalid config; its replicas stay closed", zap.String("topic", t.Name), zap.Error(err))
			continue
		}
		for p, a := range t.Assignments {
			if !slices.Contains(a.Replicas, me) {
				continue
			}
			group := t.GroupName(int32(p))
			want[group] = true
			b.replicas.mu.RLock()
			r, open := b.replicas.mu.byGroup[group]
			b.replicas.mu.RUnlock()
			if open {
				if r.config != cfg {
					r.p.SetConfig(cfg)
				}
				b.replicas.mu.Lock()
				r.topic, r.config = t, cfg
				b.replicas.mu.Unlock()
				continue
			}
			if b.replicas.isDamaged(group) {
				continue
			}
			if err := b.openReplica(t, int32(p), a, cfg, brokers); errors.Is(err, replication.ErrNoHealthyCopy) {
				b.markDamaged(group, t, int32(p))
			} else if err != nil {
				b.log.Warn("cannot open partition replica yet", zap.String("topic", t.Name), zap.Int("partition", p), zap.Error(err))
			}
		}
	}
	b.replicas.forgetDamaged(want)
	b.replicas.mu.Lock()
	var gone []*replica
	for g, r := range b.replicas.mu.byGroup {
		if !want[g] {
			gone = append(gone, r)
			delete(b.replicas.mu.byGroup, g)
		}
	}
	b.replicas.mu.Unlock()
	for _, r := range gone {
		b.removeReplica(r)
	}
}

func (b *Broker) openReplica(t metadata.Topic, p int32, a metadata.Assignment, cfg metadata.TopicConfig, brokers map[metadata.NodeID]metadata.Broker) error {
	group := t.GroupName(p)
	// Only a partition that has never had a leader is bootstrapped, by its
	// initial replicas. Any later replica (a move, or an initial replica
	// moved away and back, its state deleted) starts empty and learns the
	// group's configuration from the leader's log: bootstrapping it with
	// the initial set would give it a configuration the group left behind.
	var boot []raft.Server
	if slices.Contains(a.Initial, b.cfg.NodeID) && a.LeaderTerm == 0 {
		for _, id := range a.Initial {
			br, ok := brokers[id]
			if !ok {
				return fmt.Errorf("initial replica %d is not registered yet", id)
			}
			boot = append(boot, raft.Server{Suffrage: raft.Voter, ID: metadata.ServerID(id), Address: raft.ServerAddress(br.RaftAddr)})
		}
	}
	dir, err := b.partitionDir(t, p)
	if err != nil {
		return err
	}
	tr, err := b.mux.Transport(group)
	if err != nil {
		return err
	}
	part, err := partition.Open(partition.Options{
		Dir: dir, Topic: t.Name, ID: p, Group: group, Config: cfg,
		NodeID: metadata.ServerID(b.cfg.NodeID), Transport: tr, Stable: b.stable.For(group), Bootstrap: boot,
		Raft: b.raftCfg(), Fsync: b.fsync, FsyncInterval: b.cfg.FsyncInterval, LogSource: logSource{b},
		Logger: b.log, Metrics: b.metrics.partition, SoleReplica: len(a.Replicas) == 1,
		ReadLease: b.cfg.RaftHeartbeatTimeout,
	})
	if err != nil {
		tr.Close()
		return err
	}
	part.Group().OnLeaderChange(func(isLeader bool) {
		if isLeader {
			b.leaders.publish(t.Name, t.ID, p, group)
		}
	})
	if part.Group().Bootstrapped() {
		b.bootstrapped(group)
	}
	b.replicas.mu.Lock()
	b.replicas.mu.byGroup[group] = &replica{p: part, topic: t, config: cfg}
	b.replicas.mu.Unlock()
	b.log.Info("partition replica opened", zap.String("topic", t.Name), zap.Int32("partition", p), zap.Bool("bootstrap", len(boot) > 0))
	return nil
}

// removeReplica closes a replica this broker no longer holds and deletes
// its files and Raft state.
func (b *Broker) removeReplica(r *replica) {
	p := r.p
	if err := p.Close(); err != nil {
		b.log.Warn("close removed replica", zap.String("group", p.GroupName()), zap.Error(err))
	}
	if err := b.stable.Delete(p.GroupName()); err != nil {
		b.log.Warn("forget removed replica's raft state", zap.String("group", p.GroupName()), zap.Error(err))
	}
	dir, err := b.partitionDir(r.topic, p.ID())
	if err != nil {
		b.log.Error("not deleting a removed replica's files", zap.String("group", p.GroupName()), zap.Error(err))
		return
	}
	if err := os.RemoveAll(dir); err != nil {
		b.log.Warn("delete removed replica's files", zap.String("dir", dir), zap.Error(err))
	}
	// The topic directory goes once its last partition has.
	os.Remove(filepath.Dir(dir))
	b.log.Info("partition replica removed", zap.String("topic", p.Topic()), zap.Int32("partition", p.ID()))
}

// leaderFor finds the partition replica to serve a produce or fetch: this
// broker's, if it leads the partition; otherwise a NOT_LEADER error naming
// the leader, as this broker's replica or the metadata knows it.
func (b *Broker) leaderFor(topic string, p int32) (*partition.Partition, error) {
	t, ok := b.meta.Topic(topic)
	if !ok {
		return nil, apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN_TOPIC, "topic %q does not exist", topic)
	}
	if p < 0 || int(p) >= len(t.Assignments) {
		return nil, apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN_PARTITION, "topic %q has partitions 0 to %d, not %d", topic, len(t.Assignments)-1, p)
	}
	leader := t.Assignments[p].Leader
	if part, ok := b.replicas.get(t.GroupName(p)); ok {
		if part.IsLeader() {
			if !b.hearsMajority(t.Assignments[p].Replicas) {
				// Raft's lease keeps a cut-off leader leading for
				// raftLeaseScale heartbeat timeouts; the others elect
				// a new one after one. Meanwhile it could commit
				// nothing and would serve stale reads.
				return nil, &apierr.Error{Code: v1.ErrorCode_ERROR_CODE_NOT_LEADER,
					Message: fmt.Sprintf("broker %d led %s/%d but has not heard from most of its replicas for %s: it may be cut off; ask another broker",
						b.cfg.NodeID, topic, p, b.cfg.RaftHeartbeatTimeout)}
			}
			return part, nil
		}
		if id, _ := part.Group().Leader(); id != "" {
			fmt.Sscan(string(id), &leader)
		}
	}
	e := &apierr.Error{Code: v1.ErrorCode_ERROR_CODE_NOT_LEADER, LeaderID: leader,
		Message: fmt.Sprintf("broker %d does not lead %s/%d", b.cfg.NodeID, topic, p)}
	if leader == b.cfg.NodeID {
		leader = 0 // stale news about ourselves: an election is under way
		e.LeaderID = 0
	}
	if leader != 0 {
		e.LeaderAddr, _ = b.brokerAPI(leader)
		e.Message += fmt.Sprintf("; broker %d does", leader)
	}
	return nil, e
}

// hearsMajority reports whether this broker heard, within a heartbeat
// timeout, from the brokers of a majority of replicas (itself included).
func (b *Broker) hearsMajority(replicas []metadata.NodeID) bool {
	now := time.Now()
	up := 0
	for _, id := range replicas {
		if id == b.cfg.NodeID {
			up++
			continue
		}
		if br, ok := b.meta.Broker(id); ok && b.alive(raft.ServerAddress(br.RaftAddr), now) {
			up++
		}
	}
	return 2*up > len(replicas)
}
