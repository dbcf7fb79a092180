package client

import "time"

// ConsumerOpt configures a Consumer.
type ConsumerOpt func(*consumerConfig)

type consumerConfig struct {
	partitions    []int32
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

// Partitions limits the consumer to these partitions. Default: all
// partitions of the topic, as metadata lists them at the first Poll.
func Partitions(ps ...int32) ConsumerOpt {
	return func(c *consumerConfig) {
		seen := make(map[int32]bool)
		for _, p := range ps {
			if p < 0 {
				c.fail("Partitions: partition %d is negative", p)
				return
			}
			if seen[p] {
				c.fail("Partitions: partition %d given twice", p)
				return
			}
			seen[p] = true
		}
		c.partitions = append([]int32(nil), ps...)
	}
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
