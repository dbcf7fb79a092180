package assign

import "testing"

func TestRange(t *testing.T) {
	runAssignorCases(t, Range, []assignorCase{
		{name: "no members", topics: Topics{"t": 3}, want: ""},
		{name: "no topics", members: members("a:t", "b:t"), topics: Topics{}, want: "a=[] b=[]"},
		{name: "no subscriptions", members: members("a:", "b:"), topics: Topics{"t": 2}, want: "a=[] b=[]"},
		{name: "one topic", members: members("a:t", "b:t"), topics: Topics{"t": 3},
			want: "a=[t-0 t-1] b=[t-2]"},
		{name: "kafka doc example: the first member gets the extra of every topic",
			members: members("c0:t0,t1", "c1:t0,t1"), topics: Topics{"t0": 3, "t1": 3},
			want: "c0=[t0-0 t0-1 t1-0 t1-1] c1=[t0-2 t1-2]"},
		{name: "more members than partitions", members: members("a:t", "b:t", "c:t"), topics: Topics{"t": 2},
			want: "a=[t-0] b=[t-1] c=[]"},
		{name: "different subscriptions", members: members("a:t1", "b:t1,t2", "c:t2"),
			topics: Topics{"t1": 3, "t2": 2},
			want:   "a=[t1-0 t1-1] b=[t1-2 t2-0] c=[t2-1]"},
		{name: "input order does not matter", members: members("c:t2", "b:t2,t1", "a:t1"),
			topics: Topics{"t1": 3, "t2": 2},
			want:   "a=[t1-0 t1-1] b=[t1-2 t2-0] c=[t2-1]"},
		{name: "static members first, by instance ID", members: members("a/z:t", "b:t", "c/y:t"),
			topics: Topics{"t": 3}, want: "a=[t-1] b=[t-2] c=[t-0]"},
		{name: "a restarted static member keeps its place", members: members("a2/z:t", "b:t", "c/y:t"),
			topics: Topics{"t": 3}, want: "a2=[t-1] b=[t-2] c=[t-0]"},
		{name: "missing and empty topics are ignored", members: members("a:t,gone,empty", "b:t"),
			topics: Topics{"t": 2, "empty": 0}, want: "a=[t-0] b=[t-1]"},
		{name: "partition count increase: recomputed, prev ignored", members: members("a:t", "b:t"),
			topics: Topics{"t": 5}, prev: "a=[t-0 t-1] b=[t-2 t-3]", want: "a=[t-0 t-1 t-2] b=[t-3 t-4]"},
	})
}
