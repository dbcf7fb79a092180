package broker

import (
	"fmt"
	"sync"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/metadata"
)

// peers holds one gRPC connection per other broker, dialled on first use
// (gRPC reconnects by itself) and closed with the broker.
type peers struct {
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func (p *peers) conn(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[addr]; ok {
		return c, nil
	}
	if p.conns == nil {
		p.conns = map[string]*grpc.ClientConn{}
	}
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		return nil, err
	}
	p.conns[addr] = c
	return c, nil
}

func (p *peers) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// brokerAPI returns the API address of a registered broker.
func (b *Broker) brokerAPI(id metadata.NodeID) (string, bool) {
	br, ok := b.meta.Broker(id)
	return br.APIAddr, ok
}

// internalClient returns a client for another broker's internal service.
func (b *Broker) internalClient(id metadata.NodeID) (v1.StrataInternalClient, error) {
	addr, ok := b.brokerAPI(id)
	if !ok {
		return nil, apierr.New(v1.ErrorCode_ERROR_CODE_UNAVAILABLE, "broker %d is not registered yet", id)
	}
	c, err := b.peers.conn(addr)
	if err != nil {
		return nil, fmt.Errorf("dial broker %d at %s: %w", id, addr, err)
	}
	return v1.NewStrataInternalClient(c), nil
}

func raftAddress(s string) raft.ServerAddress { return raft.ServerAddress(s) }
