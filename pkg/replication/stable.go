package replication

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// StableStores keeps the raft term and vote of every group on a broker in
// one bbolt file laid out as raft-boltdb's (bucket "conf"). Those are a
// few small writes per election, each fsynced before it returns, so a
// replica never answers a vote or an append with a term it could forget
// in a crash (Jepsen's Kafka 2013 lesson: up-to-date vote checks are only
// as good as the fsync behind them). One file per broker rather than per
// group: a bbolt file costs a file descriptor, a mmap and a lock each.
//
// Writes go through bbolt's Batch, so the writes of many groups at once
// share one transaction and one fsync. With raft-boltdb's Set, each was its
// own fsynced transaction under one lock: when hundreds of groups elected
// together (a broker killed, a CPU stall) their term and vote writes queued
// for seconds, vote requests timed out, and elections restarted (an
// election storm seen with 1,000 partitions on three brokers).
//
// Keys in the file (bucket "conf"):
//
//	+-------------------+-------+--------
//	| uvarint len(group)| group | key      → 1 byte state (1 live, 0 deleted) + value
//	+-------------------+-------+--------
//
// and, with an empty key, the group's key list (each key as uvarint length
// + bytes), so that Delete can find them: raft-boltdb has no delete or
// iteration for these keys, so Delete overwrites each with the "deleted"
// state, which Get reports as not found. The layout is part of the file
// format.
type StableStores struct {
	db      *bbolt.DB
	ballast string        // see put
	closing chan struct{} // closed by Close: writes stop retrying
	once    sync.Once

	mu struct {
		sync.Mutex
		keys map[string]map[string]bool // group → known keys
	}
}

const (
	stateDeleted byte = 0
	stateLive    byte = 1
)

var confBucket = []byte("conf") // raft-boltdb's bucket name, kept for existing files

// put writes key/value pairs in one batched, fsynced transaction.
//
// Raft panics when it cannot store a term or a vote, so a full disk must
// not fail these writes: found by the fault suite (test/chaos, network
// scenario), a broker whose disk filled exited at its next election. On
// ENOSPC put deletes the ballast file (ballastBytes written when the store
// was opened, so a full disk still has room for terms and votes) and
// retries every stableRetryGap for up to stableRetryFor, or until Close.
// The ballast is not written again until the broker restarts.
func (s *StableStores) put(kvs ...[]byte) error {
	deadline := time.Now().Add(stableRetryFor)
	for {
		err := s.db.Batch(func(tx *bbolt.Tx) error {
			b := tx.Bucket(confBucket)
			for i := 0; i+1 < len(kvs); i += 2 {
				if err := b.Put(kvs[i], kvs[i+1]); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil || !errors.Is(err, syscall.ENOSPC) || time.Now().After(deadline) {
			return err
		}
		if s.ballast != "" {
			os.Remove(s.ballast) // room for this write, and a few more
			continue
		}
		t := time.NewTimer(stableRetryGap)
		select {
		case <-s.closing:
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// The stable store's answer to a full disk (put).
const (
	ballastBytes   = 4 << 20
	stableRetryGap = 100 * time.Millisecond
	stableRetryFor = 30 * time.Second
)

// writeBallast writes the ballast file next to the store, if it is not
// there; a failure leaves none (a full disk at start: put retries).
func writeBallast(path string) string {
	if st, err := os.Stat(path); err == nil && st.Size() == ballastBytes {
		return path
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return ""
	}
	_, err = f.Write(make([]byte, ballastBytes))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return ""
	}
	return path
}

// read returns a copy of key's value, nil if absent.
func (s *StableStores) read(key []byte) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bbolt.Tx) error {
		if v := tx.Bucket(confBucket).Get(key); v != nil {
			out = append([]byte{}, v...)
		}
		return nil
	})
	return out, err
}

// OpenStableStores opens (creating if needed) the broker's stable-store
// file at path.
func OpenStableStores(path string) (*StableStores, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("replication: open stable store %s (is another broker using this data dir?): %w", path, err)
	}
	// A short batch window: a lone write waits at most this long for
	// company; a burst of elections shares one fsync.
	db.MaxBatchDelay = 2 * time.Millisecond
	if err := db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(confBucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("replication: open stable store %s: %w", path, err)
	}
	s := &StableStores{db: db, ballast: writeBallast(path + ".ballast"), closing: make(chan struct{})}
	s.mu.keys = make(map[string]map[string]bool)
	return s, nil
}

// Close closes the file. Groups using it must be closed first.
func (s *StableStores) Close() error {
	s.once.Do(func() { close(s.closing) })
	return s.db.Close()
}

// For returns group's view of the file: a raft.StableStore whose keys are
// prefixed with the group's name. It is safe for concurrent use.
func (s *StableStores) For(group string) raft.StableStore { return &groupStable{s: s, group: group} }

// Delete removes every key of group (when its replica is deleted from this
// broker), so that a group of the same name created later starts at term 0.
func (s *StableStores) Delete(group string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys, err := s.loadKeys(group)
	if err != nil {
		return err
	}
	kvs := [][]byte{groupKey(group, ""), {}}
	for k := range keys {
		kvs = append(kvs, groupKey(group, k), []byte{stateDeleted})
	}
	if err := s.put(kvs...); err != nil {
		return fmt.Errorf("replication: delete stable state of %s: %w", group, err)
	}
	s.mu.keys[group] = map[string]bool{}
	return nil
}

func groupKey(group, key string) []byte {
	b := binary.AppendUvarint(make([]byte, 0, 2+len(group)+len(key)), uint64(len(group)))
	return append(append(b, group...), key...)
}

// loadKeys returns group's known keys, reading them from the file the first
// time. Caller holds mu.
func (s *StableStores) loadKeys(group string) (map[string]bool, error) {
	if keys, ok := s.mu.keys[group]; ok {
		return keys, nil
	}
	keys := map[string]bool{}
	b, err := s.read(groupKey(group, ""))
	if err != nil {
		return nil, fmt.Errorf("replication: read stable keys of %s: %w", group, err)
	}
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return nil, fmt.Errorf("replication: stable keys of %s: corrupt list", group)
		}
		keys[string(b[k:k+int(n)])] = true
		b = b[k+int(n):]
	}
	s.mu.keys[group] = keys
	return keys, nil
}

// set writes group's key, with the group's key list in the same
// transaction if the key is new. The lock covers only the key list in
// memory, not the write: groups write concurrently and share fsyncs. A
// group's raft writes its keys from one goroutine, one at a time, so two
// key lists of one group are never in flight together.
func (s *StableStores) set(group string, key, val []byte) error {
	s.mu.Lock()
	keys, err := s.loadKeys(group)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	kvs := [][]byte{groupKey(group, string(key)), append([]byte{stateLive}, val...)}
	added := !keys[string(key)]
	if added {
		var list []byte
		keys[string(key)] = true
		for k := range keys {
			list = binary.AppendUvarint(list, uint64(len(k)))
			list = append(list, k...)
		}
		kvs = append(kvs, groupKey(group, ""), list)
	}
	s.mu.Unlock()
	if err := s.put(kvs...); err != nil {
		if added {
			s.mu.Lock()
			delete(keys, string(key))
			s.mu.Unlock()
		}
		return fmt.Errorf("replication: stable store of %s: %w", group, err)
	}
	return nil
}

// get returns group's key; a missing or deleted key returns
// raftboltdb.ErrKeyNotFound, whose message ("not found") raft checks for.
func (s *StableStores) get(group string, key []byte) ([]byte, error) {
	v, err := s.read(groupKey(group, string(key)))
	if err != nil {
		return nil, err
	}
	if len(v) == 0 || v[0] != stateLive {
		return nil, raftboltdb.ErrKeyNotFound
	}
	return v[1:], nil
}

// groupStable is one group's raft.StableStore.
type groupStable struct {
	s     *StableStores
	group string
}

func (g *groupStable) Set(key, val []byte) error { return g.s.set(g.group, key, val) }

func (g *groupStable) Get(key []byte) ([]byte, error) { return g.s.get(g.group, key) }

func (g *groupStable) SetUint64(key []byte, val uint64) error {
	return g.s.set(g.group, key, binary.BigEndian.AppendUint64(nil, val))
}

func (g *groupStable) GetUint64(key []byte) (uint64, error) {
	v, err := g.s.get(g.group, key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("replication: stable store of %s: key %q holds %d bytes, want 8", g.group, key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}
