package brokertest

import "go.uber.org/goleak"

// LeakOptions are the goleak exceptions for tests that start brokers:
// memberlist's Shutdown does not wait for its probe and packet goroutines,
// which end on their own moments later. Use them in TestMain:
//
//	goleak.VerifyTestMain(m, brokertest.LeakOptions()...)
func LeakOptions() []goleak.Option {
	var out []goleak.Option
	for _, f := range []string{"triggerFunc", "packetHandler", "streamListen", "packetListen", "pushPullTrigger", "probeNode"} {
		out = append(out, goleak.IgnoreAnyFunction("github.com/hashicorp/memberlist.(*Memberlist)."+f))
	}
	return out
}
