package broker

import (
	"context"
	"fmt"
	"net"
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
		grpc.WithContextDialer(dialPeer),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		return nil, err
	}
	p.conns[addr] = c
	return c, nil
}

// dialPeer dials another broker's API, refusing a socket connected to
// itself: redialling a stopped broker's port, when it lies in the
// ephemeral range, can self-connect and then hold the port the broker
// needs when it restarts.
func dialPeer(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if nc.LocalAddr().String() == nc.RemoteAddr().String() {
		nc.Close()
		return nil, fmt.Errorf("dial %s: connected to itself (no broker listens there)", addr)
	}
	return nc, nil
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
