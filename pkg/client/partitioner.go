package client

import (
	"math/rand/v2"
	"sync"
)

// Partitioner picks the partition of each produced record. The producer
// calls Partition once per record, for a topic with n partitions (ids 0 to
// n-1), and may call it from several goroutines at once; the result must
// be in [0, n), except that a manual partitioner may return any id and the
// producer then fails the record with apierr.ErrUnknownPartition if the
// topic has no such partition.
type Partitioner interface {
	Partition(r *Record, n int) int32
}

// batchSizer is implemented by partitioners that switch partitions when a
// batch fills; NewProducer tells them the batch size.
type batchSizer interface {
	setBatchBytes(n int)
}

// KeyHashPartitioner is the default: records with a key go to
// toPositive(murmur2(key)) % n, exactly as Kafka's Java client places
// them, so keyed records land on the same partition whichever client
// wrote them; records with a nil key are spread stickily (see
// StickyPartitioner).
func KeyHashPartitioner() Partitioner {
	return &keyHash{sticky: newSticky()}
}

type keyHash struct{ sticky *sticky }

func (k *keyHash) Partition(r *Record, n int) int32 {
	if r.Key == nil {
		return k.sticky.Partition(r, n)
	}
	return int32(toPositive(murmur2(r.Key)) % uint32(n))
}

func (k *keyHash) setBatchBytes(n int) { k.sticky.setBatchBytes(n) }

// RoundRobinPartitioner sends each record, keyed or not, to the next
// partition in turn. It makes the smallest batches of the three.
func RoundRobinPartitioner() Partitioner { return &roundRobin{next: make(map[string]int)} }

type roundRobin struct {
	mu   sync.Mutex
	next map[string]int
}

func (rr *roundRobin) Partition(r *Record, n int) int32 {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	p := rr.next[r.Topic] % n
	rr.next[r.Topic] = p + 1
	return int32(p)
}

// StickyPartitioner ignores keys and sends records to one partition,
// chosen at random, until about a batch's worth of bytes has gone there,
// then picks another. Batches fill sooner than with round robin, which is
// why Kafka made it the default for keyless records (KIP-480).
func StickyPartitioner() Partitioner { return newSticky() }

type sticky struct {
	mu         sync.Mutex
	batchBytes int
	cur        map[string]stickyState
}

type stickyState struct {
	partition int32
	bytes     int
}

func newSticky() *sticky {
	return &sticky{batchBytes: defaultBatchMaxBytes, cur: make(map[string]stickyState)}
}

func (s *sticky) setBatchBytes(n int) {
	s.mu.Lock()
	s.batchBytes = n
	s.mu.Unlock()
}

func (s *sticky) Partition(r *Record, n int) int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.cur[r.Topic]
	if !ok || int(st.partition) >= n || st.bytes >= s.batchBytes {
		next := int32(rand.N(n))
		if ok && n > 1 && next == st.partition {
			next = (next + 1) % int32(n)
		}
		st = stickyState{partition: next}
	}
	st.bytes += r.size()
	s.cur[r.Topic] = st
	return st.partition
}

// ManualPartitioner sends each record to its Record.Partition when that is
// 0 or more, and to the default KeyHashPartitioner's choice when it is
// negative. It is not the default because a zero Record.Partition would
// then send everything to partition 0.
func ManualPartitioner() Partitioner { return &manual{fallback: KeyHashPartitioner().(*keyHash)} }

type manual struct{ fallback *keyHash }

func (m *manual) Partition(r *Record, n int) int32 {
	if r.Partition >= 0 {
		return r.Partition
	}
	return m.fallback.Partition(r, n)
}

func (m *manual) setBatchBytes(n int) { m.fallback.setBatchBytes(n) }

// murmur2 is Kafka's Utils.murmur2: MurmurHash2, 32 bits, seed 0x9747b28c,
// little-endian blocks. The constants are part of the partitioning
// contract with every other Kafka client.
func murmur2(data []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	n := len(data)
	h := seed ^ uint32(n)
	for i := 0; i+4 <= n; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := n &^ 3
	switch n % 4 {
	case 3:
		h ^= uint32(data[tail+2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[tail+1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[tail])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

// toPositive is Kafka's Utils.toPositive: clear the sign bit.
func toPositive(h uint32) uint32 { return h & 0x7fffffff }
