package metadata

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/raft"
)

// envelope is how a Change travels through the metadata Raft log: its kind
// and its JSON. Both are part of the log format: renaming a Change type or
// a field breaks logs written before.
type envelope struct {
	Kind   string          `json:"kind"`
	Change json.RawMessage `json:"change"`
}

// EncodeChange is a Change as the metadata Raft log (and the broker-to-broker
// forwarding RPC) carries it.
func EncodeChange(c Change) ([]byte, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	return json.Marshal(envelope{Kind: fmt.Sprintf("%T", c), Change: b})
}

// changeKinds decodes each kind of Change. Adding a Change type means
// adding it here.
var changeKinds = map[string]func(json.RawMessage) (Change, error){
	"metadata.CreateTopic":      decodeAs[CreateTopic],
	"metadata.DeleteTopic":      decodeAs[DeleteTopic],
	"metadata.AlterTopicConfig": decodeAs[AlterTopicConfig],
	"metadata.InitCluster":      decodeAs[InitCluster],
	"metadata.RegisterBroker":   decodeAs[RegisterBroker],
	"metadata.SetLeader":        decodeAs[SetLeader],
	"metadata.Reassign":         decodeAs[Reassign],
	// Producer ids (producer_ids.go).
	"metadata.AllocateProducerIDs": decodeAs[AllocateProducerIDs],
	// Security (security.go).
	"metadata.UpsertScramCredential": decodeAs[UpsertScramCredential],
	"metadata.DeleteUser":            decodeAs[DeleteUser],
	"metadata.CreateACLs":            decodeAs[CreateACLs],
	"metadata.DeleteACLs":            decodeAs[DeleteACLs],
}

func decodeAs[T Change](b json.RawMessage) (Change, error) {
	var v T
	err := json.Unmarshal(b, &v)
	return v, err
}

// DecodeChange reverses EncodeChange.
func DecodeChange(b []byte) (Change, error) {
	var e envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("metadata: undecodable log entry: %w", err)
	}
	decode, ok := changeKinds[e.Kind]
	if !ok {
		return nil, fmt.Errorf("metadata: unknown change kind %q (written by a newer broker?)", e.Kind)
	}
	c, err := decode(e.Change)
	if err != nil {
		return nil, fmt.Errorf("metadata: bad %s: %w", e.Kind, err)
	}
	return c, nil
}

// fsm applies committed changes to the state. Readers take snapshots of the
// state under the read lock; apply replaces it whole, so a change either
// happens entirely or not at all.
type fsm struct {
	mu     sync.RWMutex
	st     state
	notify func()
}

// Apply runs on raft's FSM goroutine. Its return value is the change's
// result: nil or the error that refused it (the same on every replica).
func (f *fsm) Apply(l *raft.Log) any {
	c, err := DecodeChange(l.Data)
	if err != nil {
		return err
	}
	f.mu.Lock()
	next := f.st.clone()
	err = next.apply(c)
	if err == nil {
		f.st = next
	}
	f.mu.Unlock()
	if err == nil {
		f.notify()
	}
	return err
}

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	b, err := json.Marshal(f.st)
	if err != nil {
		return nil, err
	}
	return snapshot(b), nil
}

func (f *fsm) Restore(r io.ReadCloser) error {
	defer r.Close()
	st := newState()
	if err := json.NewDecoder(r).Decode(&st); err != nil {
		return fmt.Errorf("metadata: restore snapshot: %w", err)
	}
	if st.Topics == nil {
		st.Topics = map[string]Topic{}
	}
	if st.Brokers == nil {
		st.Brokers = map[NodeID]Broker{}
	}
	if st.Users == nil {
		st.Users = map[string]User{}
	}
	st.setACLs(st.ACLs)
	f.mu.Lock()
	f.st = st
	f.mu.Unlock()
	f.notify()
	return nil
}

func (f *fsm) read() state {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st
}

// snapshot is the whole metadata as JSON: small (topics and brokers).
type snapshot []byte

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s snapshot) Release() {}
