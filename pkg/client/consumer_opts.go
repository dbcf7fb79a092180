package client

import (
	"fmt"
	"slices"
	"time"
)

// ConsumerOpt configures a Consumer.
type ConsumerOpt func(*consumerConfig)

type consumerConfig struct {
	partitions    []int32            // Partitions: of the one topic
	topicParts    map[string][]int32 // TopicPartitions, and Partitions once bound to its topic
	start         Offset
	reset         Offset
	onReset       func(topic string, partition int32, from, to int64)
	fetchMaxBytes int32
	maxWait       time.Duration
	optErrs
}

const (
	defaultFetchMaxBytes = 50 << 20
	defaultFetchMaxWait  = 500 * time.Millisecond
)

func defaultConsumerConfig() consumerConfig {
	return consumerConfig{
		start:         Earliest(),
		reset:         Earliest(),
		fetchMaxBytes: defaultFetchMaxBytes,
		maxWait:       defaultFetchMaxWait,
	}
}

// Partitions limits a consumer of one topic to these partitions.
// Default: all partitions of the topic, as metadata lists them at the
// first Poll. A consumer of several topics refuses it, since it would
// not say whose partitions they are: use TopicPartitions.
func Partitions(ps ...int32) ConsumerOpt {
	return func(c *consumerConfig) {
		if err := checkPartitions(ps); err != nil {
			c.fail("Partitions: %v", err)
			return
		}
		c.partitions = slices.Clone(ps)
	}
}

// TopicPartitions limits each topic named in parts to its partitions
// there; the consumer's other topics are read whole. Every topic named
// must be one the consumer reads. With one topic,
// TopicPartitions(map[string][]int32{t: ps}) is Partitions(ps...).
func TopicPartitions(parts map[string][]int32) ConsumerOpt {
	return func(c *consumerConfig) {
		for t, ps := range parts {
			if len(ps) == 0 {
				c.fail("TopicPartitions: topic %q has no partitions; leave it out to read all of them", t)
				return
			}
			if err := checkPartitions(ps); err != nil {
				c.fail("TopicPartitions: topic %q: %v", t, err)
				return
			}
		}
		if c.topicParts == nil {
			c.topicParts = make(map[string][]int32, len(parts))
		}
		for t, ps := range parts {
			c.topicParts[t] = slices.Clone(ps)
		}
	}
}

// checkPartitions refuses negative and repeated partitions.
func checkPartitions(ps []int32) error {
	seen := make(map[int32]bool, len(ps))
	for _, p := range ps {
		if p < 0 {
			return fmt.Errorf("partition %d is negative", p)
		}
		if seen[p] {
			return fmt.Errorf("partition %d given twice", p)
		}
		seen[p] = true
	}
	return nil
}

// bindPartitions checks Partitions and TopicPartitions against the
// consumer's topics and leaves the choice in topicParts alone.
func (c *consumerConfig) bindPartitions(topics []string) error {
	for t := range c.topicParts {
		if !slices.Contains(topics, t) {
			return fmt.Errorf("client: TopicPartitions names topic %q, which the consumer does not read (it reads %v)", t, topics)
		}
	}
	if len(c.partitions) == 0 {
		return nil
	}
	if len(topics) > 1 {
		return fmt.Errorf("client: Partitions applies to a consumer of one topic; this one reads %v: use TopicPartitions", topics)
	}
	if _, both := c.topicParts[topics[0]]; both {
		return fmt.Errorf("client: both Partitions and TopicPartitions name the partitions of %q: give one", topics[0])
	}
	if c.topicParts == nil {
		c.topicParts = make(map[string][]int32, 1)
	}
	c.topicParts[topics[0]] = c.partitions
	return nil
}

// StartAt sets where each partition is first read from. Default
// Earliest().
func StartAt(o Offset) ConsumerOpt {
	return func(c *consumerConfig) {
		if o.kind == offsetNone {
			c.fail("StartAt: NoReset() is a reset policy, not a start")
			return
		}
		if (o.kind == offsetExact || o.kind == offsetFromEnd) && o.n < 0 {
			c.fail("StartAt: offset %d is negative", o.n)
			return
		}
		c.start = o
	}
}

// ResetPolicy says where to go when the position is out of the stored
// range (retention or DeleteRecords deleted it, or AtOffset named a
// future offset): Earliest() or Latest(), or NoReset() to stay and have
// Poll return the OFFSET_OUT_OF_RANGE error. Default Earliest(), which
// skips the least.
func ResetPolicy(o Offset) ConsumerOpt {
	return func(c *consumerConfig) {
		if o.kind != offsetEarliest && o.kind != offsetLatest && o.kind != offsetNone {
			c.fail("ResetPolicy: %s is none of Earliest(), Latest() and NoReset()", o)
			return
		}
		c.reset = o
	}
}

// OnReset is called (on the goroutine calling Poll) each time a
// partition's position is reset by the ResetPolicy, with the position
// given up and the new one. Records between them are skipped.
func OnReset(fn func(topic string, partition int32, from, to int64)) ConsumerOpt {
	return func(c *consumerConfig) { c.onReset = fn }
}

// FetchMaxBytes caps the bytes a fetch asks for (the broker may clamp it,
// and always returns at least one whole batch). Default 50 MiB.
func FetchMaxBytes(n int32) ConsumerOpt {
	return func(c *consumerConfig) {
		if n < 1 {
			c.fail("FetchMaxBytes: %d is not positive", n)
			return
		}
		c.fetchMaxBytes = n
	}
}

// FetchMaxWait is how long a fetch waits on the broker for new records
// before returning empty. Default 500ms.
func FetchMaxWait(d time.Duration) ConsumerOpt {
	return func(c *consumerConfig) {
		if d < 0 {
			c.fail("FetchMaxWait: %s is negative", d)
			return
		}
		c.maxWait = d
	}
}
