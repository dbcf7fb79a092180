package client

import (
	"context"
	"regexp"
	"time"
)

// GroupOpt configures a GroupConsumer.
type GroupOpt func(*groupConfig)

// commitMode is what a GroupConsumer commits by itself.
type commitMode uint8

const (
	commitPolled commitMode = iota // auto-commit what Poll returned (before the last Poll)
	commitMarked                   // auto-commit what MarkRecords marked
	commitManual                   // nothing: CommitSync, CommitAsync, CommitRecords only
)

type groupConfig struct {
	topics           []string
	regex            string
	instanceID       string
	assignor         string
	sessionTimeout   time.Duration
	rebalanceTimeout time.Duration
	commit           commitMode
	commitInterval   time.Duration
	onAssigned       func(ctx context.Context, parts []TopicPartition)
	onRevoked        func(ctx context.Context, parts []TopicPartition)
	onLost           func(ctx context.Context, parts []TopicPartition)
	fetch            consumerConfig // ResetPolicy, OnReset, FetchMaxBytes, FetchMaxWait
	optErrs
}

const defaultCommitInterval = 5 * time.Second

func defaultGroupConfig() groupConfig {
	return groupConfig{commitInterval: defaultCommitInterval, fetch: defaultConsumerConfig()}
}

// Topics subscribes the group member to these topics. Topics or
// TopicRegex is required.
func Topics(names ...string) GroupOpt {
	return func(c *groupConfig) {
		for _, n := range names {
			if n == "" {
				c.fail("Topics: empty topic name")
				return
			}
		}
		c.topics = append(c.topics, names...)
	}
}

// TopicRegex subscribes the group member to every topic whose whole name
// matches expr (RE2 syntax, as Go's regexp; "orders-.*" matches
// "orders-eu" but not "old-orders-eu"). The coordinator resolves it, so
// topics created later join the subscription.
func TopicRegex(expr string) GroupOpt {
	return func(c *groupConfig) {
		if _, err := regexp.Compile(expr); err != nil || expr == "" {
			c.fail("TopicRegex: %q is not a regular expression: %v", expr, err)
			return
		}
		c.regex = expr
	}
}

// InstanceID makes the member static: a member that leaves with Close
// and rejoins with the same id within the session timeout gets its
// partitions back, without a rebalance (a rolling restart). Ids must be
// unique within the group.
func InstanceID(id string) GroupOpt {
	return func(c *groupConfig) { c.instanceID = id }
}

// Assignor names the coordinator's assignor: "uniform" (the broker's
// default: sticky and cooperative), "range" or "roundrobin".
func Assignor(name string) GroupOpt {
	return func(c *groupConfig) { c.assignor = name }
}

// SessionTimeout is how long the coordinator keeps a member that stopped
// heartbeating (or a static member that left) before giving its
// partitions away. Default: the broker's (45s).
func SessionTimeout(d time.Duration) GroupOpt {
	return func(c *groupConfig) {
		if d < 0 {
			c.fail("SessionTimeout: %s is negative", d)
			return
		}
		c.sessionTimeout = d
	}
}

// RebalanceTimeout is how long the coordinator waits for the member to
// release revoked partitions (that is, for the next Poll) before it
// fences it. Default: the broker's.
func RebalanceTimeout(d time.Duration) GroupOpt {
	return func(c *groupConfig) {
		if d < 0 {
			c.fail("RebalanceTimeout: %s is negative", d)
			return
		}
		c.rebalanceTimeout = d
	}
}

// AutoCommitInterval is how often the positions after the records
// returned by Poll, up to the previous Poll, are committed. Default 5s.
func AutoCommitInterval(d time.Duration) GroupOpt {
	return func(c *groupConfig) {
		if d <= 0 {
			c.fail("AutoCommitInterval: %s is not positive", d)
			return
		}
		c.commitInterval = d
	}
}

// AutoCommitMarks makes auto-commit (periodic, on revoke and on Close)
// commit only what MarkRecords marked, not everything Poll returned.
func AutoCommitMarks() GroupOpt {
	return func(c *groupConfig) { c.commit = commitMarked }
}

// DisableAutoCommit turns auto-commit off: only CommitSync, CommitAsync
// and CommitRecords commit; commit revoked partitions in OnRevoked.
func DisableAutoCommit() GroupOpt {
	return func(c *groupConfig) { c.commit = commitManual }
}

// OnAssigned is called with the partitions the member has just taken,
// before any of their records is returned; their positions are set (the
// committed offset, or the reset policy), and Seek may move them.
// It runs on the goroutine calling Poll.
func OnAssigned(fn func(ctx context.Context, parts []TopicPartition)) GroupOpt {
	return func(c *groupConfig) { c.onAssigned = fn }
}

// OnRevoked is called with the partitions the member must give up (a
// rebalance, or Close), while it still owns them: CommitSync and
// CommitRecords work for them. Auto-commit commits them after it
// returns. It runs on the goroutine calling Poll (or Close).
func OnRevoked(fn func(ctx context.Context, parts []TopicPartition)) GroupOpt {
	return func(c *groupConfig) { c.onRevoked = fn }
}

// OnLost is called with the partitions the member lost because the
// coordinator fenced it (it missed its session timeout, or its epoch was
// stale): another member may own them already, and commits for them
// would fail. Default: OnRevoked's function, if set. It runs on the
// goroutine calling Poll.
func OnLost(fn func(ctx context.Context, parts []TopicPartition)) GroupOpt {
	return func(c *groupConfig) { c.onLost = fn }
}

// FetchOpts applies consumer options to the group consumer's fetches and
// positions: ResetPolicy (where a partition with no committed offset
// starts, Earliest() by default, and where an out-of-range position
// goes), OnReset, FetchMaxBytes and FetchMaxWait. Partitions,
// TopicPartitions and StartAt do not apply to a group (the coordinator
// assigns partitions, and committed offsets say where they start) and are
// refused.
func FetchOpts(opts ...ConsumerOpt) GroupOpt {
	return func(c *groupConfig) {
		for _, o := range opts {
			o(&c.fetch)
		}
		if len(c.fetch.partitions) > 0 || len(c.fetch.topicParts) > 0 {
			c.fail("FetchOpts: Partitions and TopicPartitions do not apply to a group: the coordinator assigns partitions")
			c.fetch.partitions, c.fetch.topicParts = nil, nil
		}
		if c.fetch.start != Earliest() {
			c.fail("FetchOpts: StartAt does not apply to a group: use ResetPolicy for partitions without a committed offset")
			c.fetch.start = Earliest()
		}
	}
}

func (c *groupConfig) check() error {
	if (len(c.topics) == 0) == (c.regex == "") {
		c.fail("NewGroupConsumer: give Topics or TopicRegex (one of them)")
	}
	if c.onLost == nil {
		c.onLost = c.onRevoked
	}
	errs := append(c.optErrs, c.fetch.optErrs...)
	return errs.err()
}
