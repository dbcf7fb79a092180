package assign

import (
	"errors"
	"strings"
	"testing"
)

// tp parses "topic-3".
func tp(s string) TopicPartition {
	i := strings.LastIndexByte(s, '-')
	p := 0
	for _, c := range s[i+1:] {
		p = p*10 + int(c-'0')
	}
	return TopicPartition{s[:i], int32(p)}
}

// parse reads the String form of an Assignment: "a=[t-0 t-1] b=[]".
func parse(s string) Assignment {
	a := Assignment{}
	if s == "" {
		return a
	}
	for _, entry := range strings.Split(s, "] ") {
		id, list, _ := strings.Cut(strings.TrimSuffix(entry, "]"), "=[")
		a[id] = []TopicPartition{}
		for _, f := range strings.Fields(list) {
			a[id] = append(a[id], tp(f))
		}
	}
	return a
}

// members builds members from "id:t1,t2" specs; "id/inst:t1" sets an
// instance ID.
func members(specs ...string) []Member {
	var ms []Member
	for _, s := range specs {
		id, topics, _ := strings.Cut(s, ":")
		id, inst, _ := strings.Cut(id, "/")
		m := Member{ID: id, InstanceID: inst}
		if topics != "" {
			m.Topics = strings.Split(topics, ",")
		}
		ms = append(ms, m)
	}
	return ms
}

func TestParseRoundTrip(t *testing.T) {
	for _, s := range []string{"", "a=[]", "a=[t-0 t-1] b=[] c=[x-y-12]"} {
		if got := parse(s).String(); got != s {
			t.Errorf("parse(%q).String() = %q", s, got)
		}
	}
}

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		err        error
	}{
		{"", Uniform, nil},
		{"uniform", Uniform, nil},
		{"range", Range, nil},
		{"roundrobin", RoundRobin, nil},
		{"sticky", "", ErrUnknownAssignor},
		{"Range", "", ErrUnknownAssignor},
	} {
		a, err := New(tc.name)
		if !errors.Is(err, tc.err) {
			t.Errorf("New(%q) error = %v, want %v", tc.name, err, tc.err)
			continue
		}
		if err == nil && a.Name() != tc.want {
			t.Errorf("New(%q).Name() = %q, want %q", tc.name, a.Name(), tc.want)
		}
	}
	for _, name := range Names() {
		if _, err := New(name); err != nil {
			t.Errorf("New(%q) for a name from Names: %v", name, err)
		}
	}
}

func TestInvalidInput(t *testing.T) {
	for _, tc := range []struct {
		name    string
		members []Member
		topics  Topics
		err     error
	}{
		{"empty member ID", []Member{{ID: "a"}, {ID: ""}}, Topics{"t": 1}, ErrEmptyMemberID},
		{"duplicate member", []Member{{ID: "b"}, {ID: "a"}, {ID: "b"}}, Topics{"t": 1}, ErrDuplicateMember},
		{"negative partitions", []Member{{ID: "a"}}, Topics{"t": -1}, ErrNegativePartitions},
	} {
		for _, name := range Names() {
			a, _ := New(name)
			if _, err := a.Assign(tc.members, tc.topics, nil); !errors.Is(err, tc.err) {
				t.Errorf("%s: %s: error = %v, want %v", name, tc.name, err, tc.err)
			}
		}
	}
}

// assignorCase is one table-test row shared by the assignors' tests.
type assignorCase struct {
	name    string
	members []Member
	topics  Topics
	prev    string // Assignment.String form
	want    string
}

func runAssignorCases(t *testing.T, assignor string, cases []assignorCase) {
	t.Helper()
	a, err := New(assignor)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var prev Assignment
			if tc.prev != "" {
				prev = parse(tc.prev)
			}
			got, err := a.Assign(tc.members, tc.topics, prev)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			if err := checkValid(tc.members, tc.topics, got); err != nil {
				t.Error(err)
			}
		})
	}
}
