package broker

// SetHandlerHook makes every gRPC call run hook(method) first, inside the
// recovering interceptor: tests make a handler panic with it.
func SetHandlerHook(b *Broker, hook func(method string)) { b.recover.hook.Store(&hook) }
