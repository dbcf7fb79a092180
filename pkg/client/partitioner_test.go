package client

import (
	"fmt"
	"testing"
)

// Kafka's own vectors (clients/.../utils/UtilsTest.java, testMurmur2): the
// property is that a keyed record lands on the partition the Java client,
// franz-go and librdkafka's murmur2 partitioner choose.
func TestMurmur2MatchesKafka(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int32
	}{
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
	} {
		if got := int32(murmur2([]byte(c.in))); got != c.want {
			t.Errorf("murmur2(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

func TestKeyHashPartition(t *testing.T) {
	p := KeyHashPartitioner()
	for _, c := range []struct {
		key  string
		n    int
		want int32
	}{
		// toPositive(-973932308) = 1173551340; % 3 = 0, % 10 = 0, % 7 = 3.
		{"21", 3, 0},
		{"21", 10, 0},
		{"21", 7, 3},
		// toPositive(479470107) = 479470107; % 4 = 3, % 5 = 2.
		{"abc", 4, 3},
		{"abc", 5, 2},
		// toPositive(-790332482) = 1357151166; % 6 = 0, % 4 = 2.
		{"foobar", 6, 0},
		{"foobar", 4, 2},
	} {
		r := &Record{Topic: "t", Key: []byte(c.key)}
		for range 3 { // stable
			if got := p.Partition(r, c.n); got != c.want {
				t.Errorf("key %q over %d partitions: got %d, want %d", c.key, c.n, got, c.want)
			}
		}
	}
	// An empty key is a key (hashes), not a null key (sticky).
	if got, want := p.Partition(&Record{Topic: "t", Key: []byte{}}, 1000), int32(toPositive(murmur2(nil))%1000); got != want {
		t.Errorf("empty key: got %d, want %d", got, want)
	}
}

func TestStickySwitchesAfterABatch(t *testing.T) {
	s := newSticky()
	s.setBatchBytes(100)
	r := &Record{Topic: "t", Value: make([]byte, 30)} // size 50
	first := s.Partition(r, 4)
	if again := s.Partition(r, 4); again != first {
		t.Fatalf("second record went to %d, want the sticky %d", again, first)
	}
	// 100 bytes went to first: the next record switches, to another one.
	if next := s.Partition(r, 4); next == first {
		t.Fatalf("after a full batch still on %d", first)
	}
	// Topics stick independently; one partition always gives 0.
	if got := s.Partition(&Record{Topic: "u"}, 1); got != 0 {
		t.Fatalf("single partition: got %d", got)
	}
}

func TestKeylessRecordsAreSticky(t *testing.T) {
	p := KeyHashPartitioner()
	r := &Record{Topic: "t", Value: []byte("v")}
	first := p.Partition(r, 8)
	for i := range 100 {
		if got := p.Partition(r, 8); got != first {
			t.Fatalf("record %d went to %d, want sticky %d", i, got, first)
		}
	}
}

func TestRoundRobin(t *testing.T) {
	p := RoundRobinPartitioner()
	var got []int32
	for range 7 {
		got = append(got, p.Partition(&Record{Topic: "t", Key: []byte("same")}, 3))
	}
	if fmt.Sprint(got) != "[0 1 2 0 1 2 0]" {
		t.Fatalf("got %v", got)
	}
	if g := p.Partition(&Record{Topic: "other"}, 3); g != 0 {
		t.Fatalf("other topic starts at %d", g)
	}
}

func TestManualPartitioner(t *testing.T) {
	p := ManualPartitioner()
	if got := p.Partition(&Record{Topic: "t", Partition: 5}, 3); got != 5 {
		t.Fatalf("explicit partition: got %d, want 5 (validated by the producer)", got)
	}
	if got := p.Partition(&Record{Topic: "t", Partition: -1, Key: []byte("21")}, 7); got != 3 {
		t.Fatalf("negative partition falls back to key hash: got %d, want 3", got)
	}
}
