package broker

import "context"

// SetHandlerHook makes every gRPC call run hook(method) first, inside the
// recovering interceptor: tests make a handler panic with it.
func SetHandlerHook(b *Broker, hook func(method string)) { b.recover.hook.Store(&hook) }

// MetricNames lists the names of every metric the broker registered.
func MetricNames(b *Broker) []string { return b.metrics.reg.names() }

// CheckHealth runs the partition health check now (metrics_health.go).
func CheckHealth(b *Broker) { b.checkHealth(context.Background()) }
