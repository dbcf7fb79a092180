package metadata

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/acl"
	"github.com/stratalog/strata/pkg/apierr"
)

// Change is one metadata change: a topic's (CreateTopic, DeleteTopic,
// AlterTopicConfig, SetLeader, Reassign), the cluster's (InitCluster,
// RegisterBroker) or security's (UpsertScramCredential, DeleteUser,
// CreateACLs, DeleteACLs).
// Changes are plain values so that a Raft-backed store can log them.
type Change interface{ isChange() }

// CreateTopic adds a topic. Its ID is assigned by the store when empty.
type CreateTopic struct{ Topic Topic }

// DeleteTopic removes a topic.
type DeleteTopic struct{ Name string }

// AlterTopicConfig sets and deletes a topic's own config keys.
type AlterTopicConfig struct {
	Name   string
	Set    map[string]string
	Delete []string
}

// InitCluster names the cluster; only the first one applied counts.
type InitCluster struct{ ClusterID string }

// RegisterBroker records (or updates) a broker and its addresses.
type RegisterBroker struct{ Broker Broker }

// SetLeader publishes a partition's leader; ignored unless its term is at
// least the one already recorded.
type SetLeader struct {
	Topic     string
	TopicID   string
	Partition int32
	Leader    NodeID
	Term      uint64
}

// Reassign changes a partition's replica set (partition move).
type Reassign struct {
	Topic     string
	Partition int32
	Replicas  []NodeID
}

func (CreateTopic) isChange()      {}
func (DeleteTopic) isChange()      {}
func (AlterTopicConfig) isChange() {}
func (InitCluster) isChange()      {}
func (RegisterBroker) isChange()   {}
func (SetLeader) isChange()        {}
func (Reassign) isChange()         {}

// Broker is a broker as the metadata records it.
type Broker struct {
	ID NodeID `json:"id"`
	// APIAddr is the advertised address of its CLIENT listener (else its
	// first); brokers call each other there.
	APIAddr  string `json:"api_addr"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
	// Listeners maps each client listener's name to its advertised
	// address. Records from before named listeners have none: their only
	// listener is CLIENT, at APIAddr (ListenerAddr).
	Listeners map[string]string `json:"listeners,omitempty"`
}

// DefaultListener is the name of a broker's listener when it has only
// --api-addr, and of an old record's only listener.
const DefaultListener = "CLIENT"

// ListenerAddr returns the advertised address of the broker's listener
// name, and whether it has one.
func (b Broker) ListenerAddr(name string) (string, bool) {
	if len(b.Listeners) == 0 {
		return b.APIAddr, name == DefaultListener && b.APIAddr != ""
	}
	addr, ok := b.Listeners[name]
	return addr, ok
}

// Equal reports whether two records say the same.
func (b Broker) Equal(o Broker) bool {
	return b.ID == o.ID && b.APIAddr == o.APIAddr && b.RaftAddr == o.RaftAddr && b.HTTPAddr == o.HTTPAddr && maps.Equal(b.Listeners, o.Listeners)
}

// state is the metadata itself; apply is deterministic.
type state struct {
	ClusterID string            `json:"cluster_id"`
	Topics    map[string]Topic  `json:"topics"`
	Brokers   map[NodeID]Broker `json:"brokers"`
	// Users and ACLs (security.go); absent from older snapshots.
	Users map[string]User `json:"users,omitempty"`
	ACLs  []acl.Binding   `json:"acls,omitempty"`
	// aclIndex indexes ACLs; rebuilt whenever they change.
	aclIndex *acl.Index
	// NextProducerID: the first producer id not yet given to a broker
	// (producer_ids.go); absent (0) from older snapshots.
	NextProducerID int64 `json:"next_producer_id,omitempty"`
}

func newState() state {
	return state{Topics: map[string]Topic{}, Brokers: map[NodeID]Broker{}, Users: map[string]User{}}
}

// clone copies what apply may change, so a failed apply changes nothing.
func (s *state) clone() state {
	// ACLs are replaced whole by the changes that touch them; a user's
	// credentials likewise (applySecurity).
	return state{ClusterID: s.ClusterID, Topics: maps.Clone(s.Topics), Brokers: maps.Clone(s.Brokers),
		Users: maps.Clone(s.Users), ACLs: s.ACLs, aclIndex: s.aclIndex, NextProducerID: s.NextProducerID}
}

// apply validates c against s (validate.go) and applies it; a refused
// change leaves s as it was.
func (s *state) apply(c Change) error {
	if err := s.validate(c); err != nil {
		return err
	}
	switch c := c.(type) {
	case AllocateProducerIDs:
		return s.applyProducerIDs(c)
	case CreateTopic:
		if _, ok := s.Topics[c.Topic.Name]; ok {
			return apierr.New(v1.ErrorCode_ERROR_CODE_TOPIC_EXISTS, "topic %q already exists", c.Topic.Name)
		}
		s.Topics[c.Topic.Name] = c.Topic
	case DeleteTopic:
		if _, ok := s.Topics[c.Name]; !ok {
			return unknownTopic(c.Name)
		}
		delete(s.Topics, c.Name)
	case AlterTopicConfig:
		t, ok := s.Topics[c.Name]
		if !ok {
			return unknownTopic(c.Name)
		}
		cfg := maps.Clone(t.Config)
		if cfg == nil {
			cfg = map[string]string{}
		}
		for _, k := range c.Delete {
			delete(cfg, k)
		}
		maps.Copy(cfg, c.Set)
		t.Config = cfg
		s.Topics[c.Name] = t
	case InitCluster:
		if s.ClusterID == "" {
			s.ClusterID = c.ClusterID
		}
	case RegisterBroker:
		s.Brokers[c.Broker.ID] = c.Broker
	case SetLeader:
		t, ok := s.Topics[c.Topic]
		if !ok || t.ID != c.TopicID || c.Partition < 0 || int(c.Partition) >= len(t.Assignments) {
			return nil // the topic was deleted or recreated meanwhile: stale news
		}
		a := t.Assignments[c.Partition]
		if c.Term < a.LeaderTerm {
			return nil
		}
		t.Assignments = slices.Clone(t.Assignments)
		a.Leader, a.LeaderTerm = c.Leader, c.Term
		t.Assignments[c.Partition] = a
		s.Topics[c.Topic] = t
	case Reassign:
		t, ok := s.Topics[c.Topic]
		if !ok {
			return unknownTopic(c.Topic)
		}
		if c.Partition < 0 || int(c.Partition) >= len(t.Assignments) {
			return apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN_PARTITION, "topic %q has no partition %d", c.Topic, c.Partition)
		}
		t.Assignments = slices.Clone(t.Assignments)
		a := t.Assignments[c.Partition]
		a.Replicas = slices.Clone(c.Replicas)
		t.Assignments[c.Partition] = a
		s.Topics[c.Topic] = t
	case UpsertScramCredential, DeleteUser, CreateACLs, DeleteACLs:
		s.applySecurity(c)
	default:
		panic(fmt.Sprintf("metadata: unknown change %T", c))
	}
	return nil
}

func unknownTopic(name string) error {
	return apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN_TOPIC, "topic %q does not exist", name)
}

// NewID returns a random 128-bit id in hex.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
