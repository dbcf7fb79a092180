package brokertest

import "go.uber.org/goleak"

// LeakOptions are the goleak exceptions for tests that start brokers:
// memberlist's Shutdown does not wait for its probe and packet goroutines,
// which end on their own moments later; and hashicorp/raft never answers a
// future still queued in its channels when it shuts down, so the goroutine
// replication.Group.wait started for it waits for ever (see Group.wait).
// Use them in TestMain:
//
//	goleak.VerifyTestMain(m, brokertest.LeakOptions()...)
func LeakOptions() []goleak.Option {
	var out []goleak.Option
	for _, f := range []string{"triggerFunc", "packetHandler", "streamListen", "packetListen", "pushPullTrigger", "probeNode"} {
		out = append(out, goleak.IgnoreAnyFunction("github.com/hashicorp/memberlist.(*Memberlist)."+f))
	}
	return append(out, RaftFutureLeak)
}

// RaftFutureLeak is the goleak exception for Group.wait's goroutines left
// waiting on futures raft dropped at shutdown (see LeakOptions).
var RaftFutureLeak = goleak.IgnoreAnyFunction("github.com/stratalog/strata/pkg/replication.(*Group).wait.func1")
