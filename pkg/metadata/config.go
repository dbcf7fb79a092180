package metadata

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
)

// TopicConfig is a topic's configuration, parsed. Durations are in the
// units Kafka uses on the wire (milliseconds) so that names and values move
// unchanged between Kafka tools and Strata.
type TopicConfig struct {
	RetentionMs        int64  // -1 = keep forever
	RetentionBytes     int64  // per partition; -1 = unlimited
	SegmentBytes       int64  // roll the active segment at this size
	SegmentMs          int64  // roll the active segment at this age
	CleanupPolicy      string // "delete", "compact" or "compact,delete"
	MinCompactionLagMs int64
	DeleteRetentionMs  int64 // how long tombstones stay after compaction
	MaxMessageBytes    int64 // largest record batch accepted
	Immutable          bool  // event-store mode: never shrinks
	// Timestamps (Kafka's message.timestamp.*): which time a record
	// carries, and for CreateTime how far from the brokers' agreed clock a
	// producer's timestamp may be.
	TimestampType        string // "CreateTime" or "LogAppendTime"
	TimestampBeforeMaxMs int64  // how far in the past; math.MaxInt64 = unbounded
	TimestampAfterMaxMs  int64  // how far in the future
}

// The values of message.timestamp.type.
const (
	CreateTime    = "CreateTime"
	LogAppendTime = "LogAppendTime"
)

// SegmentAge is SegmentMs as a duration.
func (c TopicConfig) SegmentAge() time.Duration { return time.Duration(c.SegmentMs) * time.Millisecond }

// Config keys.
const (
	KeyRetentionMs        = "retention.ms"
	KeyRetentionBytes     = "retention.bytes"
	KeySegmentBytes       = "segment.bytes"
	KeySegmentMs          = "segment.ms"
	KeyCleanupPolicy      = "cleanup.policy"
	KeyMinCompactionLagMs = "min.compaction.lag.ms"
	KeyDeleteRetentionMs  = "delete.retention.ms"
	KeyMaxMessageBytes    = "max.message.bytes"
	KeyImmutable          = "immutable"
	KeyTimestampType      = "message.timestamp.type"
	KeyTimestampBeforeMax = "message.timestamp.before.max.ms"
	KeyTimestampAfterMax  = "message.timestamp.after.max.ms"
)

// Limits on values.
const (
	MinSegmentBytes    = 1 << 10
	MaxSegmentBytes    = 1 << 30
	MaxMaxMessageBytes = 32 << 20
)

type configKey struct {
	def   string
	doc   string
	parse func(v string, c *TopicConfig) error
}

func intIn(lo, hi int64, set func(*TopicConfig, int64)) func(string, *TopicConfig) error {
	return func(v string, c *TopicConfig) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("not an integer")
		}
		if n < lo || n > hi {
			return fmt.Errorf("must be between %d and %d", lo, hi)
		}
		set(c, n)
		return nil
	}
}

// keys is the table of every topic config key: its default, its meaning
// and its parser. Unknown keys are refused.
var keys = map[string]configKey{
	KeyRetentionMs: {"604800000", "how long records are kept, in ms (-1 = forever)",
		intIn(-1, math.MaxInt64, func(c *TopicConfig, n int64) { c.RetentionMs = n })},
	KeyRetentionBytes: {"-1", "largest size of a partition's log before old segments are deleted (-1 = unlimited)",
		intIn(-1, math.MaxInt64, func(c *TopicConfig, n int64) { c.RetentionBytes = n })},
	KeySegmentBytes: {strconv.Itoa(MaxSegmentBytes), "segment file size at which the log rolls to a new segment",
		intIn(MinSegmentBytes, MaxSegmentBytes, func(c *TopicConfig, n int64) { c.SegmentBytes = n })},
	KeySegmentMs: {"604800000", "segment age in ms at which the log rolls to a new segment",
		intIn(1, math.MaxInt64, func(c *TopicConfig, n int64) { c.SegmentMs = n })},
	KeyCleanupPolicy: {"delete", `"delete" (retention), "compact" (latest record per key) or "compact,delete"`,
		func(v string, c *TopicConfig) error {
			parts := strings.Split(v, ",")
			sort.Strings(parts)
			switch strings.Join(parts, ",") {
			case "delete":
				c.CleanupPolicy = "delete"
			case "compact":
				c.CleanupPolicy = "compact"
			case "compact,delete":
				c.CleanupPolicy = "compact,delete"
			default:
				return fmt.Errorf(`must be "delete", "compact" or "compact,delete"`)
			}
			return nil
		}},
	KeyMinCompactionLagMs: {"0", "records younger than this (ms) are never compacted",
		intIn(0, math.MaxInt64, func(c *TopicConfig, n int64) { c.MinCompactionLagMs = n })},
	KeyDeleteRetentionMs: {"86400000", "how long tombstones survive compaction, in ms",
		intIn(0, math.MaxInt64, func(c *TopicConfig, n int64) { c.DeleteRetentionMs = n })},
	KeyMaxMessageBytes: {strconv.Itoa(1 << 20), "largest record batch accepted, in bytes",
		intIn(1, MaxMaxMessageBytes, func(c *TopicConfig, n int64) { c.MaxMessageBytes = n })},
	// Kafka's defaults as of 4.0 (KIP-1030): the past is unbounded, the
	// future one hour. A record stamped in the future keeps its segment
	// from time retention until then; one in the past is only its
	// producer's business (its segment's age is its newest record's).
	KeyTimestampType: {CreateTime, `"CreateTime" (the producer's timestamp, checked against the window below) or "LogAppendTime" (the brokers' agreed clock when the leader appends)`,
		func(v string, c *TopicConfig) error {
			if v != CreateTime && v != LogAppendTime {
				return fmt.Errorf(`must be "CreateTime" or "LogAppendTime"`)
			}
			c.TimestampType = v
			return nil
		}},
	KeyTimestampBeforeMax: {strconv.FormatInt(math.MaxInt64, 10), "with CreateTime, refuse a batch holding a record stamped more than this many ms before the brokers' agreed clock",
		intIn(0, math.MaxInt64, func(c *TopicConfig, n int64) { c.TimestampBeforeMaxMs = n })},
	KeyTimestampAfterMax: {"3600000", "with CreateTime, refuse a batch holding a record stamped more than this many ms after the brokers' agreed clock",
		intIn(0, math.MaxInt64, func(c *TopicConfig, n int64) { c.TimestampAfterMaxMs = n })},
	KeyImmutable: {"false", "event-store mode: records are kept forever; retention, compaction and deletion are refused; cannot be turned off",
		func(v string, c *TopicConfig) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf(`must be "true" or "false"`)
			}
			c.Immutable = b
			return nil
		}},
}

// ConfigKeys lists every topic config key, sorted.
func ConfigKeys() []string {
	out := make([]string, 0, len(keys))
	for k := range keys {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ConfigDoc is the one-line meaning of a key.
func ConfigDoc(key string) string { return keys[key].doc }

// BuiltinDefaults is the value of every key when neither the topic nor the
// broker sets it.
func BuiltinDefaults() map[string]string {
	out := make(map[string]string, len(keys))
	for k, v := range keys {
		out[k] = v.def
	}
	return out
}

func invalidConfig(format string, args ...any) error {
	return apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_CONFIG, format, args...)
}

// ValidateRaw checks that every key in raw is known and its value valid,
// without resolving defaults.
func ValidateRaw(raw map[string]string) error {
	var c TopicConfig
	for _, k := range sortedKeys(raw) {
		key, ok := keys[k]
		if !ok {
			return invalidConfig("unknown config key %q (known keys: %s)", k, strings.Join(ConfigKeys(), ", "))
		}
		if err := key.parse(raw[k], &c); err != nil {
			return invalidConfig("invalid value %q for %s: %v", raw[k], k, err)
		}
	}
	return nil
}

// ParseTopicConfig resolves a topic's own settings over the broker's
// defaults (which are themselves over BuiltinDefaults) and checks the
// combination.
func ParseTopicConfig(topic, brokerDefaults map[string]string) (TopicConfig, error) {
	if err := ValidateRaw(brokerDefaults); err != nil {
		return TopicConfig{}, err
	}
	if err := ValidateRaw(topic); err != nil {
		return TopicConfig{}, err
	}
	merged := Effective(topic, brokerDefaults)
	var c TopicConfig
	for _, k := range sortedKeys(merged) {
		if err := keys[k].parse(merged[k], &c); err != nil {
			return TopicConfig{}, invalidConfig("invalid value %q for %s: %v", merged[k], k, err)
		}
	}
	if c.Immutable {
		// Event-store mode: a topic that no setting can quietly shrink. The
		// topic may not ask for anything else; broker-wide retention
		// defaults simply do not apply to it.
		if v, ok := topic[KeyRetentionMs]; ok && v != "-1" {
			return c, invalidConfig("immutable topics keep records forever: retention.ms must be -1, not %s", v)
		}
		if v, ok := topic[KeyRetentionBytes]; ok && v != "-1" {
			return c, invalidConfig("immutable topics keep records forever: retention.bytes must be -1, not %s", v)
		}
		if _, ok := topic[KeyCleanupPolicy]; ok && c.CleanupPolicy != "delete" {
			return c, invalidConfig("immutable topics cannot be compacted: cleanup.policy must be delete")
		}
		c.RetentionMs, c.RetentionBytes, c.CleanupPolicy = -1, -1, "delete"
	}
	if c.MaxMessageBytes > c.SegmentBytes {
		return c, invalidConfig("max.message.bytes (%d) must not exceed segment.bytes (%d)", c.MaxMessageBytes, c.SegmentBytes)
	}
	return c, nil
}

// Effective is the full key→value map for a topic: its own settings over
// the broker defaults over the built-in defaults.
func Effective(topic, brokerDefaults map[string]string) map[string]string {
	out := BuiltinDefaults()
	for k, v := range brokerDefaults {
		out[k] = v
	}
	for k, v := range topic {
		out[k] = v
	}
	return out
}

// CheckAlter refuses changes that would weaken an immutable topic.
func CheckAlter(before, after map[string]string) error {
	was, _ := strconv.ParseBool(before[KeyImmutable])
	is, _ := strconv.ParseBool(after[KeyImmutable])
	if was && !is {
		return apierr.New(v1.ErrorCode_ERROR_CODE_POLICY_VIOLATION,
			"topic is immutable: the immutable setting cannot be removed or set to false")
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Deletes reports whether retention deletes old segments (cleanup.policy
// delete or compact,delete) and the topic is not immutable.
func (c TopicConfig) Deletes() bool {
	return !c.Immutable && (c.CleanupPolicy == "delete" || c.CleanupPolicy == "compact,delete")
}

// Compacts reports whether the topic is key-compacted.
func (c TopicConfig) Compacts() bool {
	return !c.Immutable && (c.CleanupPolicy == "compact" || c.CleanupPolicy == "compact,delete")
}
