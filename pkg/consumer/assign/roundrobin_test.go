package assign

import "testing"

func TestRoundRobin(t *testing.T) {
	runAssignorCases(t, RoundRobin, []assignorCase{
		{name: "no members", topics: Topics{"t": 3}, want: ""},
		{name: "no topics", members: members("a:t", "b:t"), topics: Topics{}, want: "a=[] b=[]"},
		{name: "kafka doc example, same subscriptions", members: members("c0:t0,t1", "c1:t0,t1"),
			topics: Topics{"t0": 3, "t1": 3},
			want:   "c0=[t0-0 t0-2 t1-1] c1=[t0-1 t1-0 t1-2]"},
		{name: "kafka doc example, different subscriptions", members: members("c0:t0", "c1:t0,t1", "c2:t0,t1,t2"),
			topics: Topics{"t0": 1, "t1": 2, "t2": 3},
			want:   "c0=[t0-0] c1=[t1-0] c2=[t1-1 t2-0 t2-1 t2-2]"},
		{name: "more members than partitions", members: members("a:t", "b:t", "c:t"), topics: Topics{"t": 2},
			want: "a=[t-0] b=[t-1] c=[]"},
		{name: "the circle carries over topics", members: members("a:t1,t2", "b:t1,t2", "c:t1,t2"),
			topics: Topics{"t1": 2, "t2": 2}, want: "a=[t1-0 t2-1] b=[t1-1] c=[t2-0]"},
		{name: "static members first, by instance ID", members: members("a/z:t", "b:t", "c/y:t"),
			topics: Topics{"t": 4}, want: "a=[t-1] b=[t-2] c=[t-0 t-3]"},
		{name: "partition count increase: recomputed, prev ignored", members: members("a:t", "b:t"),
			topics: Topics{"t": 5}, prev: "a=[t-0 t-2] b=[t-1 t-3]", want: "a=[t-0 t-2 t-4] b=[t-1 t-3]"},
	})
}
