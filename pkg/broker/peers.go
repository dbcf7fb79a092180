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

// peers holds the gRPC connections to other brokers' inter-broker
// listeners (their internal service, and their public API for calls
// forwarded on a client's behalf), dialled on first use (gRPC reconnects
// by itself) and closed with the broker.
type peers struct {
	mu    sync.Mutex
	inter map[string]*grpc.ClientConn
}

// internalConn returns the connection to the internal service of the
// broker whose inter-broker listener is addr, dialled with dial (the
// Mux's: TCP, TLS if on, the handshake).
func (p *peers) internalConn(addr string, dial func(context.Context, string) (net.Conn, error)) (*grpc.ClientConn, error) {
	// passthrough: the dialer gets addr as registered, whose host TLS
	// checks the peer's certificate against, not a resolved IP.
	return p.get(&p.inter, addr, "passthrough:///"+addr, dial)
}

func (p *peers) get(m *map[string]*grpc.ClientConn, key, target string, dial func(context.Context, string) (net.Conn, error)) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := (*m)[key]; ok {
		return c, nil
	}
	if *m == nil {
		*m = map[string]*grpc.ClientConn{}
	}
	c, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(dial),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		return nil, err
	}
	(*m)[key] = c
	return c, nil
}

func (p *peers) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.inter {
		c.Close()
	}
	p.inter = nil
}

// brokerAPI returns the API address of a registered broker.
func (b *Broker) brokerAPI(id metadata.NodeID) (string, bool) {
	br, ok := b.meta.Broker(id)
	return br.APIAddr, ok
}

// internalClient returns a client for another broker's internal service,
// through its inter-broker listener (interbroker.go).
func (b *Broker) internalClient(id metadata.NodeID) (v1.StrataInternalClient, error) {
	c, err := b.peerConn(id)
	if err != nil {
		return nil, err
	}
	return v1.NewStrataInternalClient(c), nil
}

func raftAddress(s string) raft.ServerAddress { return raft.ServerAddress(s) }

// peerPublic returns a client for another broker's public API through its
// inter-broker listener, for calls forwarded on a client's behalf: the
// client listeners may require TLS or SASL this broker has no credentials
// for, and the inter-broker listener authenticates brokers as brokers.
func (b *Broker) peerPublic(id metadata.NodeID) (v1.StrataClient, error) {
	c, err := b.peerConn(id)
	if err != nil {
		return nil, err
	}
	return v1.NewStrataClient(c), nil
}

// peerConn is the connection to a registered broker's inter-broker
// listener, which serves both its internal and its public service.
func (b *Broker) peerConn(id metadata.NodeID) (*grpc.ClientConn, error) {
	br, ok := b.meta.Broker(id)
	if !ok {
		return nil, apierr.New(v1.ErrorCode_ERROR_CODE_UNAVAILABLE, "broker %d is not registered yet", id)
	}
	c, err := b.peers.internalConn(br.RaftAddr, b.mux.DialContext)
	if err != nil {
		return nil, fmt.Errorf("dial broker %d at %s: %w", id, br.RaftAddr, err)
	}
	return c, nil
}
