package metadata

import (
	"fmt"
	"maps"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
)

// Validation at apply. Every change is checked by the state machine itself
// (state.validate, called by state.apply) and not only by the broker that
// proposed it: ApplyMetadata accepts changes forwarded over the network,
// and a change that reached the log unchecked would create, and later
// delete, whatever path its topic name spells.
//
// The checks depend only on the state and the change (no clock, no broker
// config, no randomness), so a refused change is refused identically on
// every replica and the state stays the same everywhere. Checks that need
// more (the broker's config defaults, live brokers) stay where the change
// is proposed.
//
// Changes logged by an older broker that would fail these checks are
// refused when replayed, the same way on every replica.

// Bounds on what a change may carry. They are part of the log's meaning:
// lowering one makes changes logged before refused on replay.
const (
	// MaxReplicas bounds a partition's replica list.
	MaxReplicas = 64
	// MaxIDLen bounds topic and cluster ids (NewID makes 32).
	MaxIDLen = 64
	// MaxAddrLen bounds a broker address.
	MaxAddrLen = 255
	// MaxConfigEntries bounds the keys one change sets or deletes.
	MaxConfigEntries = 64
	// MaxConfigValueLen bounds one config value.
	MaxConfigValueLen = 1024
)

// IsInternalTopic reports whether a topic belongs to the brokers
// (__consumer_offsets and any other name starting with "__"): clients may
// read it but not produce to it, trim it, reconfigure it or delete it.
func IsInternalTopic(name string) bool { return strings.HasPrefix(name, "__") }

// ValidateAnyTopicName is ValidateTopicName without the reservation of
// "__" names: what the state machine accepts, internal topics included.
func ValidateAnyTopicName(name string) error { return checkTopicName(name, true) }

func invalidChange(format string, args ...any) error {
	return apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_REQUEST, "metadata change refused: "+format, args...)
}

// validateID accepts 1 to MaxIDLen letters and digits: an id is used in
// paths and Raft group names.
func validateID(what, id string) error {
	if id == "" || len(id) > MaxIDLen {
		return invalidChange("%s must have 1 to %d characters, has %d", what, MaxIDLen, len(id))
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return invalidChange("%s %q: only letters and digits are allowed", what, id)
		}
	}
	return nil
}

// validateReplicas checks a replica list: 1 to MaxReplicas registered
// brokers, none twice. allowEmpty admits an empty list (an Assignment's
// Initial may be).
func (s *state) validateReplicas(what string, rs []NodeID, allowEmpty bool) error {
	if len(rs) == 0 && allowEmpty {
		return nil
	}
	if len(rs) == 0 || len(rs) > MaxReplicas {
		return apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_REPLICATION,
			"metadata change refused: %s must list 1 to %d replicas, lists %d", what, MaxReplicas, len(rs))
	}
	for i, r := range rs {
		if _, ok := s.Brokers[r]; !ok {
			return apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_REPLICATION,
				"metadata change refused: %s lists broker %d, which is not registered", what, r)
		}
		if slices.Contains(rs[:i], r) {
			return apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_REPLICATION,
				"metadata change refused: %s lists broker %d twice", what, r)
		}
	}
	return nil
}

func validateAddr(what, addr string, optional bool) error {
	if addr == "" && optional {
		return nil
	}
	if len(addr) > MaxAddrLen {
		return invalidChange("%s is %d bytes long, at most %d", what, len(addr), MaxAddrLen)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return invalidChange("%s %q is not host:port", what, addr)
	}
	return nil
}

// MaxListeners bounds a broker's named client listeners.
const MaxListeners = 16

// listenerName is a listener's name as brokers normalise it (upper case;
// pkg/broker/listener.go).
var listenerName = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,31}$`)

// validateListeners checks a broker's listener map: a bounded number of
// well-formed names, each with a host:port, one of which is APIAddr.
func validateListeners(b Broker) error {
	if len(b.Listeners) == 0 {
		return nil
	}
	if len(b.Listeners) > MaxListeners {
		return invalidChange("broker %d has %d listeners, at most %d", b.ID, len(b.Listeners), MaxListeners)
	}
	api := false
	for name, addr := range b.Listeners {
		if !listenerName.MatchString(name) {
			return invalidChange("listener name %q: want a capital letter then up to 31 capitals, digits or _", name)
		}
		if err := validateAddr("listener "+name+" address", addr, false); err != nil {
			return err
		}
		api = api || addr == b.APIAddr
	}
	if !api {
		return invalidChange("API address %q is none of broker %d's listeners' addresses", b.APIAddr, b.ID)
	}
	return nil
}

func validateConfigSet(set map[string]string) error {
	if len(set) > MaxConfigEntries {
		return invalidConfig("%d config keys, at most %d", len(set), MaxConfigEntries)
	}
	for k, v := range set {
		if len(v) > MaxConfigValueLen {
			return invalidConfig("value of %s is %d bytes long, at most %d", k, len(v), MaxConfigValueLen)
		}
	}
	return ValidateRaw(set)
}

// validate checks c against the state it would apply to. It does not
// change s.
func (s *state) validate(c Change) error {
	switch c := c.(type) {
	case AllocateProducerIDs:
		return validateProducerIDs(c)
	case CreateTopic:
		t := c.Topic
		if err := ValidateAnyTopicName(t.Name); err != nil {
			return err
		}
		if err := validateID("topic id", t.ID); err != nil {
			return err
		}
		if err := ValidatePartitions(t.Partitions); err != nil {
			return err
		}
		if int(t.Partitions) != len(t.Assignments) {
			return invalidChange("topic %q has %d partitions but %d assignments", t.Name, t.Partitions, len(t.Assignments))
		}
		if t.ReplicationFactor < 1 || t.ReplicationFactor > MaxReplicas {
			return apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_REPLICATION,
				"metadata change refused: replication factor %d is outside 1..%d", t.ReplicationFactor, MaxReplicas)
		}
		for p, a := range t.Assignments {
			what := fmt.Sprintf("partition %d of %q", p, t.Name)
			if err := s.validateReplicas(what, a.Replicas, false); err != nil {
				return err
			}
			if err := s.validateReplicas(what+" (initial)", a.Initial, true); err != nil {
				return err
			}
			if a.Leader != 0 && !slices.Contains(a.Replicas, a.Leader) {
				return invalidChange("%s: leader %d is not one of its replicas", what, a.Leader)
			}
		}
		if err := validateOwnConfig(t.Config); err != nil {
			return err
		}
	case DeleteTopic:
		if _, ok := s.Topics[c.Name]; !ok {
			return unknownTopic(c.Name)
		}
	case AlterTopicConfig:
		t, ok := s.Topics[c.Name]
		if !ok {
			return unknownTopic(c.Name)
		}
		if err := validateConfigSet(c.Set); err != nil {
			return err
		}
		if len(c.Delete) > MaxConfigEntries {
			return invalidConfig("%d config keys to delete, at most %d", len(c.Delete), MaxConfigEntries)
		}
		for _, k := range c.Delete {
			if _, ok := keys[k]; !ok {
				return invalidConfig("unknown config key %q", k)
			}
		}
		after := alteredConfig(t.Config, c)
		if err := CheckAlter(t.Config, after); err != nil {
			return err
		}
		return validateOwnConfig(after)
	case InitCluster:
		return validateID("cluster id", c.ClusterID)
	case RegisterBroker:
		if c.Broker.ID == 0 {
			return invalidChange("broker id 0 is not a broker")
		}
		if err := validateAddr("API address", c.Broker.APIAddr, false); err != nil {
			return err
		}
		if err := validateAddr("Raft address", c.Broker.RaftAddr, false); err != nil {
			return err
		}
		if err := validateListeners(c.Broker); err != nil {
			return err
		}
		return validateAddr("HTTP address", c.Broker.HTTPAddr, true)
	case SetLeader:
		if c.Leader == 0 {
			return invalidChange("leader 0 is not a broker")
		}
		if _, ok := s.Brokers[c.Leader]; !ok {
			return invalidChange("leader %d is not a registered broker", c.Leader)
		}
	case Reassign:
		t, ok := s.Topics[c.Topic]
		if !ok {
			return unknownTopic(c.Topic)
		}
		if c.Partition < 0 || int(c.Partition) >= len(t.Assignments) {
			return apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN_PARTITION, "topic %q has no partition %d", c.Topic, c.Partition)
		}
		return s.validateReplicas(fmt.Sprintf("partition %d of %q", c.Partition, c.Topic), c.Replicas, false)
	case UpsertScramCredential, DeleteUser, CreateACLs, DeleteACLs:
		return s.validateSecurity(c)
	default:
		return invalidChange("unknown change %T", c)
	}
	return nil
}

// validateOwnConfig checks a topic's own keys and their combination. The
// max.message.bytes <= segment.bytes rule involves the broker's defaults
// unless the topic sets both, and the state machine must not read broker
// config: a key the topic leaves unset takes its most lenient value here
// (the proposing broker checked against its real defaults).
func validateOwnConfig(cfg map[string]string) error {
	if err := validateConfigSet(cfg); err != nil {
		return err
	}
	own := maps.Clone(cfg)
	if own == nil {
		own = map[string]string{}
	}
	if _, ok := own[KeySegmentBytes]; !ok {
		own[KeySegmentBytes] = strconv.Itoa(MaxSegmentBytes)
	}
	if _, ok := own[KeyMaxMessageBytes]; !ok {
		own[KeyMaxMessageBytes] = "1"
	}
	_, err := ParseTopicConfig(own, nil)
	return err
}

func alteredConfig(before map[string]string, c AlterTopicConfig) map[string]string {
	cfg := make(map[string]string, len(before)+len(c.Set))
	for k, v := range before {
		cfg[k] = v
	}
	for _, k := range c.Delete {
		delete(cfg, k)
	}
	for k, v := range c.Set {
		cfg[k] = v
	}
	return cfg
}

// PartitionDir is where a partition replica's files live under a data
// directory: <data>/topics/<name>-<topic id>/<p>. The topic id keeps a
// recreated topic from reading a deleted one's files. It refuses a name or
// id that is not valid, and any path that would leave <data>/topics, so
// that nothing is ever created or removed outside the data directory, even
// from a state that somehow holds a bad name.
func PartitionDir(dataDir string, t Topic, p PartitionID) (string, error) {
	if err := ValidateAnyTopicName(t.Name); err != nil {
		return "", err
	}
	if err := validateID("topic id", t.ID); err != nil {
		return "", err
	}
	if p < 0 {
		return "", apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN_PARTITION, "partition %d of %q", p, t.Name)
	}
	root := filepath.Join(dataDir, "topics")
	dir := filepath.Join(root, t.Name+"-"+t.ID, fmt.Sprint(p))
	rel, err := filepath.Rel(root, dir)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") || filepath.IsAbs(rel) || strings.Count(rel, string(filepath.Separator)) != 1 {
		return "", invalidChange("partition directory %q is not under %q", dir, root)
	}
	return dir, nil
}
