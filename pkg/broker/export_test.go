package broker

import (
	"context"

	"google.golang.org/grpc"
)

// SetHandlerHook makes every gRPC call run hook(method) first, inside the
// recovering interceptor: tests make a handler panic with it.
func SetHandlerHook(b *Broker, hook func(method string)) { b.recover.hook.Store(&hook) }

// MetricNames lists the names of every metric the broker registered.
func MetricNames(b *Broker) []string { return b.metrics.reg.names() }

// CheckHealth runs the partition health check now (metrics_health.go).
func CheckHealth(b *Broker) { b.checkHealth(context.Background()) }

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

// WithListener marks ctx as a request that came in on a listener with
// this name and protocol (benchmarks call interceptors directly).
func WithListener(ctx context.Context, name, protocol string) context.Context {
	return withListener(ctx, &listener{Name: name, Protocol: protocol})
}
