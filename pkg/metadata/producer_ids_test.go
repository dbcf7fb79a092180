package metadata

import (
	"encoding/json"
	"testing"
)

// TestAllocateProducerIDs: blocks are taken by compare-and-set, so two
// brokers asking for the same block cannot both get it, and the next free
// id survives a snapshot.
func TestAllocateProducerIDs(t *testing.T) {
	s := newState()
	if err := s.apply(AllocateProducerIDs{Broker: 1, From: 0, Count: 1000}); err != nil {
		t.Fatal(err)
	}
	if err := s.apply(AllocateProducerIDs{Broker: 2, From: 0, Count: 1000}); err == nil {
		t.Fatal("a second broker got the same block")
	}
	if err := s.apply(AllocateProducerIDs{Broker: 2, From: 1000, Count: 10}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []AllocateProducerIDs{{From: 1010, Count: 0}, {From: 1010, Count: MaxProducerIDBlock + 1}, {From: -1, Count: 1}} {
		if err := s.apply(bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	r := newState()
	if err := json.Unmarshal(b, &r); err != nil || r.NextProducerID != 1010 {
		t.Fatalf("after a snapshot: next producer id %d, %v; want 1010", r.NextProducerID, err)
	}
	enc, err := EncodeChange(AllocateProducerIDs{Broker: 3, From: 1010, Count: 5})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := DecodeChange(enc); err != nil || c != (AllocateProducerIDs{Broker: 3, From: 1010, Count: 5}) {
		t.Fatalf("decoded %+v, %v", c, err)
	}
}
