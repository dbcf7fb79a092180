package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
)

// metaCache holds the latest Metadata response, reshaped for routing.
//
// Each partition's produce and fetch go to the connection of the broker
// that metadata names as its leader. A stale entry costs one NOT_LEADER or
// UNAVAILABLE reply. A NOT_LEADER reply usually names the new leader (the
// old leader's Raft group knows it before the cluster metadata does): that
// hint is recorded for the partition and overrides the snapshot, so the
// retry goes straight to the new leader without a Metadata call. Any other
// retriable error (or a hint without a usable address) invalidates the
// cache, and the next call reloads it; a reload drops the hints it
// supersedes.
//
// The rejected alternative was to reload metadata in the background after
// every hint: it needs a goroutine with an owner, costs every client a
// Metadata call per leader change, and the metadata it would fetch lags
// the hint anyway. Other partitions that moved answer with their own
// hints, and the cache still reloads on the first miss without one or
// after MetadataMaxAge.
type metaCache struct {
	c    *Client
	load sync.Mutex // one Metadata call at a time; waiters reuse its result
	mu   struct {
		sync.Mutex
		snap  *snapshot
		stale bool
		hints map[topicPartition]leaderHint // newer than snap; see redirect
	}
}

// leaderHint is a partition's leader as a NOT_LEADER reply named it.
type leaderHint struct {
	id   uint32
	addr string // usable API address
	at   time.Time
}

type snapshot struct {
	at      time.Time
	resp    *v1.MetadataResponse
	brokers map[uint32]string // node id -> usable API address
	topics  map[string]*topicMeta
}

type topicMeta struct {
	name       string
	err        error
	partitions []int32          // sorted partition ids
	leaders    map[int32]uint32 // partition -> leader node id (0 = none)
	// maxMessageBytes is the topic's max.message.bytes, the largest
	// encoded batch its partitions take: the producer sizes batches under
	// it (producer_split.go). 0 when the broker did not say (an older
	// version).
	maxMessageBytes int
}

func (m *metaCache) init(c *Client) { m.c = c }

func (m *metaCache) invalidate() {
	m.mu.Lock()
	m.mu.stale = true
	m.mu.Unlock()
}

func (m *metaCache) current() (*snapshot, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.mu.snap
	fresh := s != nil && !m.mu.stale && time.Since(s.at) < m.c.cfg.metadataMaxAge
	return s, fresh
}

func (m *metaCache) brokerAddrs() []string {
	s, _ := m.current()
	if s == nil {
		return nil
	}
	var out []string
	for _, a := range s.brokers {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// refresh loads metadata unless a load that started after `since` already
// finished, in which case its result is reused.
func (m *metaCache) refresh(ctx context.Context, since time.Time) (*snapshot, error) {
	m.load.Lock()
	defer m.load.Unlock()
	if s, fresh := m.current(); fresh && s.at.After(since) {
		return s, nil
	}
	var resp *v1.MetadataResponse
	var via string
	started := time.Now()
	err := m.c.retry(ctx, time.Now().Add(m.c.cfg.retryTimeout), func(ctx context.Context, attempt int) error {
		cl, addr, err := m.c.anyConn(attempt)
		if err != nil {
			return err
		}
		r, err := cl.Metadata(ctx, &v1.MetadataRequest{})
		if err != nil {
			return classifyUnreachable(addr, apierr.FromStatus(err))
		}
		resp, via = r, addr
		return nil
	})
	if err != nil {
		// The broker's refusal and an UnreachableError say what happened
		// and where; "load metadata:" before them was noise to a user.
		var ae *apierr.Error
		var ue *UnreachableError
		if errors.As(err, &ae) || errors.As(err, &ue) {
			return nil, err
		}
		return nil, fmt.Errorf("load metadata: %w", err)
	}
	s := newSnapshot(resp, via)
	m.mu.Lock()
	m.mu.snap, m.mu.stale = s, false
	// The metadata answers for the time the call started at the
	// earliest; hints learned while it was in flight may be newer.
	for tp, h := range m.mu.hints {
		if h.at.Before(started) {
			delete(m.mu.hints, tp)
		}
	}
	m.mu.Unlock()
	return s, nil
}

func newSnapshot(resp *v1.MetadataResponse, via string) *snapshot {
	s := &snapshot{
		at:      time.Now(),
		resp:    resp,
		brokers: make(map[uint32]string),
		topics:  make(map[string]*topicMeta),
	}
	for _, b := range resp.GetBrokers() {
		if b.GetApiAddr() != "" {
			s.brokers[b.GetNodeId()] = fixAddr(b.GetApiAddr(), via)
		}
	}
	for _, t := range resp.GetTopics() {
		tm := &topicMeta{name: t.GetName(), err: apierr.FromProto(t.GetError()), leaders: make(map[int32]uint32), maxMessageBytes: int(t.GetMaxMessageBytes())}
		for _, p := range t.GetPartitions() {
			tm.partitions = append(tm.partitions, p.GetPartition())
			tm.leaders[p.GetPartition()] = p.GetLeader()
		}
		slices.Sort(tm.partitions)
		s.topics[t.GetName()] = tm
	}
	return s
}

// snapshot returns fresh metadata, loading it if needed.
func (m *metaCache) snapshot(ctx context.Context) (*snapshot, error) {
	if s, fresh := m.current(); fresh {
		return s, nil
	}
	return m.refresh(ctx, time.Now())
}

// topic returns a topic's metadata. A topic missing from a cached
// snapshot triggers one reload (it may be new) before it is reported
// unknown.
func (m *metaCache) topic(ctx context.Context, name string) (*topicMeta, error) {
	start := time.Now()
	s, err := m.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	if _, ok := s.topics[name]; !ok && s.at.Before(start) {
		if s, err = m.refresh(ctx, start); err != nil {
			return nil, err
		}
	}
	t, ok := s.topics[name]
	if !ok {
		return nil, m.missingTopic(ctx, name) // authz.go
	}
	if t.err != nil {
		return nil, t.err
	}
	if len(t.partitions) == 0 {
		return nil, apierr.New(v1.ErrorCode_ERROR_CODE_UNAVAILABLE, "topic %q has no partitions in metadata yet", name)
	}
	return t, nil
}

// leader returns the connection to the leader of topic/partition: the
// one a NOT_LEADER reply named, if newer than the metadata, else the
// metadata's.
func (m *metaCache) leader(ctx context.Context, topic string, partition int32) (v1.StrataClient, string, error) {
	t, err := m.topic(ctx, topic)
	if err != nil {
		return nil, "", err
	}
	id, ok := t.leaders[partition]
	if !ok {
		return nil, "", apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN_PARTITION, "topic %q has no partition %d", topic, partition)
	}
	m.mu.Lock()
	h, hinted := m.mu.hints[topicPartition{topic, partition}]
	s := m.mu.snap
	m.mu.Unlock()
	if hinted {
		cl, err := m.c.conn(h.addr)
		return cl, h.addr, err
	}
	addr, ok := s.brokers[id]
	if id != 0 && !ok && slices.Contains(s.resp.GetBrokersWithoutListener(), id) {
		return nil, "", fmt.Errorf("%s/%d: its leader, broker %d, has no listener %s (the one this client came in on; give every broker the same --listeners names): %w",
			topic, partition, id, s.resp.GetListener(), ErrNoLeader)
	}
	if id == 0 || !ok {
		return nil, "", fmt.Errorf("%s/%d: %w", topic, partition, ErrNoLeader)
	}
	cl, err := m.c.conn(addr)
	return cl, addr, err
}

// redirect records the leader that err, a NOT_LEADER reply from the
// broker at via about topic/partition, names, and reports whether it did:
// false when err is another error or names no leader that can be reached
// (no id, or an id with no address in the reply or the metadata).
func (m *metaCache) redirect(topic string, partition int32, via string, err error) bool {
	var e *apierr.Error
	if !errors.As(err, &e) || e.Code != v1.ErrorCode_ERROR_CODE_NOT_LEADER || e.LeaderID == 0 {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	addr := e.LeaderAddr
	if addr != "" {
		addr = fixAddr(addr, via)
	} else if m.mu.snap != nil {
		addr = m.mu.snap.brokers[e.LeaderID]
	}
	if addr == "" || addr == via {
		return false // nowhere new to go: let the metadata decide
	}
	if m.mu.hints == nil {
		m.mu.hints = make(map[topicPartition]leaderHint)
	}
	m.mu.hints[topicPartition{topic, partition}] = leaderHint{id: e.LeaderID, addr: addr, at: time.Now()}
	return true
}
