package client

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
)

// metaCache holds the latest Metadata response, reshaped for routing.
//
// Routing is by metadata even though a cluster has one broker today: each
// partition's produce and fetch go to the connection of the broker that
// metadata names as its leader, so that when partitions become Raft groups
// only the broker changes. A stale entry costs one NOT_LEADER or
// UNAVAILABLE reply, which invalidates the cache and is retried.
type metaCache struct {
	c    *Client
	load sync.Mutex // one Metadata call at a time; waiters reuse its result
	mu   struct {
		sync.Mutex
		snap  *snapshot
		stale bool
	}
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
	err := m.c.retry(ctx, time.Now().Add(m.c.cfg.retryTimeout), func(ctx context.Context, attempt int) error {
		cl, addr, err := m.c.anyConn(attempt)
		if err != nil {
			return err
		}
		r, err := cl.Metadata(ctx, &v1.MetadataRequest{})
		if err != nil {
			return apierr.FromStatus(err)
		}
		resp, via = r, addr
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load metadata: %w", err)
	}
	s := newSnapshot(resp, via)
	m.mu.Lock()
	m.mu.snap, m.mu.stale = s, false
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
		tm := &topicMeta{name: t.GetName(), err: apierr.FromProto(t.GetError()), leaders: make(map[int32]uint32)}
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
		return nil, apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN_TOPIC, "topic %q does not exist", name)
	}
	if t.err != nil {
		return nil, t.err
	}
	if len(t.partitions) == 0 {
		return nil, apierr.New(v1.ErrorCode_ERROR_CODE_UNAVAILABLE, "topic %q has no partitions in metadata yet", name)
	}
	return t, nil
}

// leader returns the connection to the leader of topic/partition.
func (m *metaCache) leader(ctx context.Context, topic string, partition int32) (v1.StrataClient, string, error) {
	t, err := m.topic(ctx, topic)
	if err != nil {
		return nil, "", err
	}
	id, ok := t.leaders[partition]
	if !ok {
		return nil, "", apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN_PARTITION, "topic %q has no partition %d", topic, partition)
	}
	s, _ := m.current()
	addr, ok := s.brokers[id]
	if id == 0 || !ok {
		return nil, "", fmt.Errorf("%s/%d: %w", topic, partition, ErrNoLeader)
	}
	cl, err := m.c.conn(addr)
	return cl, addr, err
}
