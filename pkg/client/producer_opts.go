package client

import (
	"fmt"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/record"
)

// ProducerOpt configures a Producer.
type ProducerOpt func(*producerConfig)

// Acks is how much durability a produce waits for before it is
// acknowledged.
type Acks int8

const (
	// AcksQuorum (the default): the batch is committed by a quorum of
	// replicas (and on disk when the topic fsyncs) before the reply.
	AcksQuorum Acks = iota
	// AcksLeader: the batch is written on the leader.
	AcksLeader
	// AcksNone: the batch is accepted for writing; it may still be lost.
	AcksNone
)

func (a Acks) String() string {
	switch a {
	case AcksQuorum:
		return "quorum"
	case AcksLeader:
		return "leader"
	case AcksNone:
		return "none"
	}
	return fmt.Sprintf("Acks(%d)", int8(a))
}

// ParseAcks turns "quorum" (or "all", "-1"), "leader" (or "1") and "none"
// (or "0") into Acks.
func ParseAcks(s string) (Acks, error) {
	switch s {
	case "quorum", "all", "-1":
		return AcksQuorum, nil
	case "leader", "1":
		return AcksLeader, nil
	case "none", "0":
		return AcksNone, nil
	}
	return 0, fmt.Errorf("client: acks %q: want quorum, leader or none", s)
}

func (a Acks) proto() v1.Acks {
	switch a {
	case AcksLeader:
		return v1.Acks_ACKS_LEADER
	case AcksNone:
		return v1.Acks_ACKS_NONE
	}
	return v1.Acks_ACKS_QUORUM
}

const (
	defaultLinger          = 5 * time.Millisecond
	defaultBatchMaxBytes   = 1 << 20
	defaultMaxBuffered     = 10000
	defaultDeliveryTimeout = 30 * time.Second
)

type producerConfig struct {
	linger          time.Duration
	batchMaxBytes   int
	maxBuffered     int
	compression     record.Compression
	partitioner     Partitioner
	acks            Acks
	deliveryTimeout time.Duration
	maxInFlight     int
	idempotent      bool
	optErrs
}

func defaultProducerConfig() producerConfig {
	return producerConfig{
		linger:          defaultLinger,
		batchMaxBytes:   defaultBatchMaxBytes,
		maxBuffered:     defaultMaxBuffered,
		compression:     record.None,
		acks:            AcksQuorum,
		deliveryTimeout: defaultDeliveryTimeout,
		maxInFlight:     1,
		idempotent:      true,
	}
}

// Idempotent turns the idempotent producer on (the default) or off. On,
// the producer gets an id from the cluster and numbers its records per
// partition, and a partition stores a batch the producer retried (after a
// lost reply, a timeout, a leader change) once, answering the retry with
// the first copy's offsets: each record is stored once. Off, a retry may
// store a record twice (at least once). It is off with AcksNone, which
// never retries.
func Idempotent(on bool) ProducerOpt {
	return func(c *producerConfig) { c.idempotent = on }
}

// Linger is how long a partition's batch waits for more records before it
// is sent; 0 sends as soon as the partition is idle. ProduceSync and Flush
// never wait for it. Default 5ms.
func Linger(d time.Duration) ProducerOpt {
	return func(c *producerConfig) {
		if d < 0 {
			c.fail("Linger: %s is negative", d)
			return
		}
		c.linger = d
	}
}

// BatchMaxBytes caps a batch's records (before compression); a full batch
// is sent without waiting for the linger. A record larger than this goes
// alone in its batch. Default 1 MiB. A topic whose max.message.bytes is
// lower gets smaller batches, under its limit (producer_split.go).
func BatchMaxBytes(n int) ProducerOpt {
	return func(c *producerConfig) {
		if n < 1 {
			c.fail("BatchMaxBytes: %d is not positive", n)
			return
		}
		c.batchMaxBytes = n
	}
}

// MaxBufferedRecords caps records produced but not yet acknowledged;
// Produce blocks while the cap is reached (until space frees or its
// context ends). Default 10000.
func MaxBufferedRecords(n int) ProducerOpt {
	return func(c *producerConfig) {
		if n < 1 {
			c.fail("MaxBufferedRecords: %d is not positive", n)
			return
		}
		c.maxBuffered = n
	}
}

// Compression sets the batch codec. Default none.
func Compression(codec record.Compression) ProducerOpt {
	return func(c *producerConfig) {
		if codec < record.None || codec > record.Zstd {
			c.fail("Compression: unknown codec %d", codec)
			return
		}
		c.compression = codec
	}
}

// RecordPartitioner sets how records are spread over partitions. Default
// KeyHashPartitioner.
func RecordPartitioner(p Partitioner) ProducerOpt {
	return func(c *producerConfig) {
		if p == nil {
			c.fail("RecordPartitioner: nil partitioner")
			return
		}
		c.partitioner = p
	}
}

// RequiredAcks sets the durability a produce waits for. Default
// AcksQuorum.
func RequiredAcks(a Acks) ProducerOpt {
	return func(c *producerConfig) {
		if a < AcksQuorum || a > AcksNone {
			c.fail("RequiredAcks: unknown value %d", a)
			return
		}
		c.acks = a
	}
}

// DeliveryTimeout bounds the time from Produce to the callback: retries of
// retriable errors stop when it is spent and the record fails with the
// last error. Default 30s.
func DeliveryTimeout(d time.Duration) ProducerOpt {
	return func(c *producerConfig) {
		if d <= 0 {
			c.fail("DeliveryTimeout: %s is not positive", d)
			return
		}
		c.deliveryTimeout = d
	}
}

// MaxInFlight is the number of produce requests per partition that may be
// outstanding at once. Only 1 is accepted today: with more, a retried
// batch could land after a later one; the sequence numbers of the
// idempotent producer are what will keep them in order (not built yet).
func MaxInFlight(n int) ProducerOpt {
	return func(c *producerConfig) {
		if n != 1 {
			c.fail("MaxInFlight: %d not supported yet, only 1", n)
			return
		}
		c.maxInFlight = n
	}
}
