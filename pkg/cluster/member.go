package cluster

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// NodeID identifies a broker; 0 is never a valid id.
type NodeID uint32

func (id NodeID) String() string { return strconv.FormatUint(uint64(id), 10) }

// ParseNodeID parses a node id as gossip names and Raft server ids carry it.
func ParseNodeID(s string) (NodeID, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("cluster: bad node id %q", s)
	}
	return NodeID(n), nil
}

// Meta is what a broker gossips about itself. It must stay under
// memberlist's 512-byte metadata limit.
type Meta struct {
	NodeID   NodeID `json:"id"`
	APIAddr  string `json:"api"`
	RaftAddr string `json:"raft"`
	HTTPAddr string `json:"http"`
	Version  string `json:"v,omitempty"`
	// Listeners maps each client listener's name to its advertised
	// address (APIAddr is one of them). Empty from brokers older than
	// named listeners: their one listener is CLIENT at APIAddr.
	Listeners map[string]string `json:"l,omitempty"`
}

// State is a member's liveness as gossip sees it.
type State string

// Member states, as memberlist reports them.
const (
	Alive   State = "alive"
	Suspect State = "suspect" // missed probes; may be dead
	Dead    State = "dead"
	Left    State = "left" // left gracefully
)

// Member is one broker as seen through gossip.
type Member struct {
	Meta
	GossipAddr string
	State      State
}

func encodeMeta(m Meta) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if len(b) > 512 {
		return nil, fmt.Errorf("cluster: node metadata is %d bytes, memberlist allows 512: shorten the listener names and hosts in --listeners and --advertised-listeners (or --advertise-host), or use fewer listeners", len(b))
	}
	return b, nil
}

func decodeMeta(b []byte) (Meta, error) {
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("cluster: bad node metadata: %w", err)
	}
	if m.NodeID == 0 {
		return m, fmt.Errorf("cluster: node metadata without a node id")
	}
	return m, nil
}
