package metadata

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.uber.org/zap"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/replication"
)

// GroupName is the metadata quorum's Raft group name on the transport.
const GroupName = "__metadata"

// RaftConfig configures the metadata quorum on one broker.
type RaftConfig struct {
	NodeID    NodeID
	Dir       string // raft.db (raft-boltdb: log and stable store) and snapshots
	Transport raft.Transport
	Logger    *zap.Logger
	// Tune adjusts raft's config (tests shorten the timeouts).
	Tune func(*raft.Config)
}

// RaftStore is the cluster metadata replicated by a Raft group over the
// brokers: a few voters, every other broker a non-voter, so that every
// broker reads the metadata locally. Writes go through the leader; reads
// are served from this broker's copy, which may trail the leader by the
// replication delay.
type RaftStore struct {
	raft  *raft.Raft
	self  raft.ServerID
	trans raft.Transport
	bolt  *raftboltdb.BoltStore
	fsm   *fsm
	log   *zap.Logger
	stopc chan struct{}
	wg    sync.WaitGroup

	closeOnce sync.Once
	closeErr  error

	mu struct {
		sync.Mutex
		changed chan struct{}
	}
}

// ServerID is a broker's Raft identity: its node id in decimal.
func ServerID(id NodeID) raft.ServerID { return raft.ServerID(fmt.Sprint(id)) }

// OpenRaftStore opens (or creates) this broker's replica of the metadata.
func OpenRaftStore(cfg RaftConfig) (*RaftStore, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	lg := cfg.Logger.Named("metadata")
	hl := replication.NewHCLog(lg, "raft-metadata")
	bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.Dir, "raft.db")})
	if err != nil {
		return nil, fmt.Errorf("metadata: open %s: %w", filepath.Join(cfg.Dir, "raft.db"), err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, hl)
	if err != nil {
		bolt.Close()
		return nil, fmt.Errorf("metadata: %w", err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = ServerID(cfg.NodeID)
	rc.Logger = hl
	rc.SnapshotThreshold = 1024
	rc.TrailingLogs = 1024
	if cfg.Tune != nil {
		cfg.Tune(rc)
	}
	s := &RaftStore{bolt: bolt, log: lg, stopc: make(chan struct{}), self: rc.LocalID, trans: cfg.Transport}
	s.mu.changed = make(chan struct{})
	s.fsm = &fsm{st: newState(), notify: s.notify}
	logs, err := raft.NewLogCache(256, bolt)
	if err != nil {
		bolt.Close()
		return nil, fmt.Errorf("metadata: %w", err)
	}
	r, err := raft.NewRaft(rc, s.fsm, logs, bolt, snaps, cfg.Transport)
	if err != nil {
		bolt.Close()
		return nil, fmt.Errorf("metadata: start raft: %w", err)
	}
	s.raft = r
	obs := make(chan raft.Observation, 16)
	r.RegisterObserver(raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		_, leader := o.Data.(raft.LeaderObservation)
		return leader
	}))
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			select {
			case <-obs:
				s.notify()
			case <-s.stopc:
				return
			}
		}
	}()
	return s, nil
}

// HasState reports whether this broker already belongs to a quorum (so it
// must not bootstrap one).
func (s *RaftStore) HasState() bool {
	return s.raft.LastIndex() > 0
}

// Bootstrap starts a new quorum with the given voters. Every broker chosen
// by cluster.BootstrapVoters calls it with the same list.
func (s *RaftStore) Bootstrap(voters map[NodeID]string) error {
	var servers []raft.Server
	for id, addr := range voters {
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: ServerID(id), Address: raft.ServerAddress(addr)})
	}
	sort.Slice(servers, func(i, j int) bool { return servers[i].ID < servers[j].ID })
	err := s.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
	if errors.Is(err, raft.ErrCantBootstrap) {
		return nil // already has state: bootstrapped before, or joined
	}
	return err
}

// Apply commits one change through the quorum and returns once it is
// applied here. Only the leader can; others get NOT_LEADER naming the
// leader's node id.
func (s *RaftStore) Apply(ctx context.Context, c Change) error {
	b, err := EncodeChange(c)
	if err != nil {
		return err
	}
	timeout := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	f := s.raft.Apply(b, timeout)
	if err := wait(ctx, f); err != nil {
		return s.raftError(err)
	}
	if err, _ := f.Response().(error); err != nil {
		return err
	}
	return nil
}

// wait waits for a raft future or the context. raft resolves every future
// eventually (at the latest on shutdown), so the helper goroutine ends.
func wait(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *RaftStore) raftError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrNotVoter):
		id, _ := s.Leader()
		return &apierr.Error{Code: v1.ErrorCode_ERROR_CODE_NOT_LEADER, Message: "this broker does not lead the metadata quorum", LeaderID: id}
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrEnqueueTimeout):
		return apierr.New(v1.ErrorCode_ERROR_CODE_UNAVAILABLE, "metadata change may or may not have been applied (%v); check and retry", err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return apierr.New(v1.ErrorCode_ERROR_CODE_UNAVAILABLE, "broker is shutting down")
	}
	return err
}

// Leader returns the quorum leader's node id, 0 if unknown.
func (s *RaftStore) Leader() (NodeID, raft.ServerAddress) {
	addr, id := s.raft.LeaderWithID()
	var n NodeID
	fmt.Sscan(string(id), &n)
	return n, addr
}

// Successor returns this replica as a candidate for an early election
// when the metadata leader's broker is gone (see replication.Successor).
func (s *RaftStore) Successor() replication.Successor {
	return replication.Successor{Raft: s.raft, Self: s.self, Transport: s.trans}
}

// IsLeader reports whether this broker leads the quorum.
func (s *RaftStore) IsLeader() bool { return s.raft.State() == raft.Leader }

// Changed returns a channel closed at the next change of the metadata or
// of the quorum's leader.
func (s *RaftStore) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.changed
}

func (s *RaftStore) notify() {
	s.mu.Lock()
	close(s.mu.changed)
	s.mu.changed = make(chan struct{})
	s.mu.Unlock()
}

// ClusterID is the cluster's id, empty until the first leader set it.
func (s *RaftStore) ClusterID() string { return s.fsm.read().ClusterID }

// Topic returns one topic.
func (s *RaftStore) Topic(name string) (Topic, bool) {
	t, ok := s.fsm.read().Topics[name]
	return t, ok
}

// Topics returns every topic, sorted by name.
func (s *RaftStore) Topics() []Topic {
	st := s.fsm.read()
	out := make([]Topic, 0, len(st.Topics))
	for _, t := range st.Topics {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Brokers returns every registered broker, sorted by id.
func (s *RaftStore) Brokers() []Broker {
	st := s.fsm.read()
	out := make([]Broker, 0, len(st.Brokers))
	for _, b := range st.Brokers {
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Broker returns one registered broker.
func (s *RaftStore) Broker(id NodeID) (Broker, bool) {
	br, ok := s.fsm.read().Brokers[id]
	return br, ok
}

// Voter is one member of the quorum's configuration.
type Voter struct {
	ID      NodeID
	Address string
	Voter   bool
}

// Configuration returns the quorum's members.
func (s *RaftStore) Configuration() ([]Voter, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	var out []Voter
	for _, sv := range f.Configuration().Servers {
		var id NodeID
		fmt.Sscan(string(sv.ID), &id)
		out = append(out, Voter{ID: id, Address: string(sv.Address), Voter: sv.Suffrage == raft.Voter})
	}
	return out, nil
}

// AddVoter adds (or promotes) a broker as a voter.
func (s *RaftStore) AddVoter(ctx context.Context, id NodeID, addr string) error {
	return s.raftError(wait(ctx, s.raft.AddVoter(ServerID(id), raft.ServerAddress(addr), 0, 0)))
}

// AddNonvoter adds a broker that receives the metadata without voting.
func (s *RaftStore) AddNonvoter(ctx context.Context, id NodeID, addr string) error {
	return s.raftError(wait(ctx, s.raft.AddNonvoter(ServerID(id), raft.ServerAddress(addr), 0, 0)))
}

// RemoveServer removes a broker from the quorum.
func (s *RaftStore) RemoveServer(ctx context.Context, id NodeID) error {
	return s.raftError(wait(ctx, s.raft.RemoveServer(ServerID(id), 0, 0)))
}

// Close stops this replica (the others go on). It is safe to call twice.
func (s *RaftStore) Close() error {
	s.closeOnce.Do(func() {
		replication.StopHeartbeats(s.trans)
		s.closeErr = s.raft.Shutdown().Error()
		close(s.stopc)
		s.wg.Wait()
		if cerr := s.bolt.Close(); cerr != nil && s.closeErr == nil {
			s.closeErr = cerr
		}
	})
	return s.closeErr
}
