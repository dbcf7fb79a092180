package broker

import "context"

// Security protocols of a client listener, as Kafka names them
// (listener.security.protocol.map): whether the connection is TLS, and
// whether clients must authenticate with SCRAM.
const (
	ProtocolPlaintext     = "PLAINTEXT"
	ProtocolSSL           = "SSL"
	ProtocolSASLPlaintext = "SASL_PLAINTEXT"
	ProtocolSASLSSL       = "SASL_SSL"
)

// listener is one named client listener: where it binds, what clients are
// told to dial, and its security. Each has its own gRPC server; a request
// carries the listener it came in on in its context (withListener), so
// that Metadata answers with that listener's addresses and authentication
// applies that listener's rules.
type listener struct {
	Name       string // e.g. "client", "external"
	Addr       string // bind host:port
	Advertised string // host:port clients are told (Addr made dialable if empty)
	Protocol   string // ProtocolPlaintext, ...
}

// TLS reports whether the listener's connections are TLS.
func (l *listener) TLS() bool { return l.Protocol == ProtocolSSL || l.Protocol == ProtocolSASLSSL }

// SASL reports whether clients must authenticate with a username and
// password (SCRAM) on this listener.
func (l *listener) SASL() bool {
	return l.Protocol == ProtocolSASLPlaintext || l.Protocol == ProtocolSASLSSL
}

type listenerKey struct{}

// withListener records the listener a request came in on.
func withListener(ctx context.Context, l *listener) context.Context {
	return context.WithValue(ctx, listenerKey{}, l)
}

// listenerFrom returns the listener a request came in on; a request with
// none (in-process calls, tests) counts as the default plaintext listener.
func listenerFrom(ctx context.Context) *listener {
	if l, ok := ctx.Value(listenerKey{}).(*listener); ok {
		return l
	}
	return &defaultListener
}

var defaultListener = listener{Name: "client", Protocol: ProtocolPlaintext}
