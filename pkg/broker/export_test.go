package broker

import (
	"context"
	"crypto/tls"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	v1 "github.com/stratalog/strata/api/v1"
)

// SetHandlerHook makes every gRPC call run hook(method) first, inside the
// recovering interceptor: tests make a handler panic with it.
func SetHandlerHook(b *Broker, hook func(method string)) { b.recover.hook.Store(&hook) }

// MetricNames lists the names of every metric the broker registered.
func MetricNames(b *Broker) []string { return b.metrics.reg.names() }

// CheckHealth runs the partition health check now (metrics_health.go).
func CheckHealth(b *Broker) { b.checkHealth(context.Background()) }

// SetClientProtocol makes requests that came in on no named listener count
// as coming in on one with this security protocol (PLAINTEXT, SSL,
// SASL_PLAINTEXT, SASL_SSL), as a named listener would.
func SetClientProtocol(b *Broker, protocol string) { b.authn.protocol.Store(&protocol) }

// MethodsWithoutACLMapping lists the Strata methods the authorizer has no
// checks for.
func MethodsWithoutACLMapping(methods []string) []string {
	var out []string
	for _, m := range methods {
		if _, ok := methodChecks[m]; !ok {
			out = append(out, m)
		}
	}
	return out
}

// ForgetSessions drops every session token, as a restart would.
func ForgetSessions(b *Broker) {
	b.authn.mu.Lock()
	clear(b.authn.mu.tokens)
	b.authn.mu.Unlock()
}

// SecurityUnary is the broker's authentication and authorization
// interceptor (benchmarks call it directly).
func SecurityUnary(b *Broker) grpc.UnaryServerInterceptor { return b.securityUnary }

// ServeTLS serves the broker's client API on ln with TLS, through the same
// interceptors as its API listener (until named TLS listeners are on
// main). The server stops with stop.
func ServeTLS(b *Broker, ln net.Listener, cfg *tls.Config) (stop func()) {
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(cfg)),
		grpc.ChainUnaryInterceptor(b.recover.unary, b.securityUnary, b.metrics.interceptor, boundsUnary),
		grpc.ChainStreamInterceptor(b.recover.stream, b.securityStream, boundsStream))
	v1.RegisterStrataServer(srv, b)
	go srv.Serve(ln)
	return srv.Stop
}
