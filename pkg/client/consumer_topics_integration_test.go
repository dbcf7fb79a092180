package client

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/brokertest"
)

// TestConsumerTopics: one Consumer reads two topics completely, each
// record saying its topic; positions are per topic-partition; Seek moves
// one topic's partition only; a paused partition of one topic holds while
// the other topic's partitions keep flowing, and Resume picks it up where
// it stopped.
func TestConsumerTopics(t *testing.T) {
	addr := brokertest.Start(t)
	c := newTestClient(t, addr)
	ctx := testCtx(t)
	for topic, n := range map[string]int32{"ma": 2, "mb": 1} {
		if _, err := c.Admin().CreateTopic(ctx, topic, n, 1, nil); err != nil {
			t.Fatal(err)
		}
	}
	p := c.NewProducer(RecordPartitioner(ManualPartitioner()))
	produce := func(recs ...*Record) {
		t.Helper()
		if err := p.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	rec := func(topic string, partition int32, i int) *Record {
		return &Record{Topic: topic, Partition: partition, Value: fmt.Appendf(nil, "%s/%d#%d", topic, partition, i)}
	}
	var first []*Record
	for i := range 6 {
		first = append(first, rec("ma", int32(i%2), i))
	}
	for i := range 4 {
		first = append(first, rec("mb", 0, i))
	}
	produce(first...)

	cs, err := c.NewConsumerTopics([]string{"ma", "mb"}, StartAt(Earliest()), FetchMaxWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()

	// Both topics, completely, each record naming its own topic.
	want := map[string]bool{}
	for _, r := range first {
		want[string(r.Value)] = true
	}
	for len(want) > 0 {
		r, err := cs.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if prefix := fmt.Sprintf("%s/%d#", r.Topic, r.Partition); !want[string(r.Value)] || string(r.Value[:len(prefix)]) != prefix {
			t.Fatalf("record %q came as %s/%d@%d (unexpected, repeated or from the wrong topic)", r.Value, r.Topic, r.Partition, r.Offset)
		}
		delete(want, string(r.Value))
	}
	ma0, ma1, mb0 := TopicPartition{"ma", 0}, TopicPartition{"ma", 1}, TopicPartition{"mb", 0}
	if got := cs.Assignment(); !slices.Equal(got, []TopicPartition{ma0, ma1, mb0}) {
		t.Errorf("Assignment %v, want [ma/0 ma/1 mb/0]", got)
	}
	if got := cs.Positions(); got[ma0] != 3 || got[ma1] != 3 || got[mb0] != 4 || len(got) != 3 {
		t.Errorf("Positions %v, want ma/0:3 ma/1:3 mb/0:4", got)
	}

	// Seek one topic's partition: only it is read again.
	if err := cs.Seek(ctx, "mb", 0, AtOffset(1)); err != nil {
		t.Fatal(err)
	}
	if err := cs.Seek(ctx, "ma", 2, Earliest()); err == nil {
		t.Error("Seek to ma/2, which the consumer does not read, succeeded")
	}
	if got := cs.Positions(); got[mb0] != 1 || got[ma0] != 3 || got[ma1] != 3 {
		t.Fatalf("Positions after Seek mb/0 to 1: %v", got)
	}
	for off := int64(1); off < 4; off++ {
		r, err := cs.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if r.Topic != "mb" || r.Partition != 0 || r.Offset != off {
			t.Fatalf("after Seek mb/0 to 1, read %s/%d@%d, want mb/0@%d", r.Topic, r.Partition, r.Offset, off)
		}
	}

	// Pause mb/0: ma keeps flowing, mb/0 holds its position.
	cs.Pause(mb0)
	if got := cs.Paused(); !slices.Equal(got, []TopicPartition{mb0}) {
		t.Fatalf("Paused %v, want [mb/0]", got)
	}
	produce(rec("mb", 0, 4), rec("ma", 0, 6), rec("ma", 1, 7))
	fresh := map[string]bool{"ma/0#6": true, "ma/1#7": true}
	for len(fresh) > 0 {
		recs, err := cs.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Topic == "mb" {
				t.Fatalf("paused mb/0 was read: %q at %d", r.Value, r.Offset)
			}
			delete(fresh, string(r.Value))
		}
	}
	if got := cs.Positions()[mb0]; got != 4 {
		t.Fatalf("paused mb/0 at %d, want 4", got)
	}
	cs.Resume(mb0)
	r, err := cs.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.Topic != "mb" || r.Offset != 4 || string(r.Value) != "mb/0#4" {
		t.Fatalf("after Resume read %s/%d@%d %q, want mb/0@4", r.Topic, r.Partition, r.Offset, r.Value)
	}
	if lag := cs.Lag(); lag[ma0] != 0 || lag[ma1] != 0 || lag[mb0] != 0 {
		t.Errorf("Lag %v after reading everything", lag)
	}

	// TopicPartitions limits one topic and leaves the other whole.
	cs2, err := c.NewConsumerTopics([]string{"ma", "mb"}, TopicPartitions(map[string][]int32{"ma": {1}}), FetchMaxWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cs2.Close()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for seen := map[TopicPartition]int{}; seen[ma1] < 4 || seen[mb0] < 5; {
		recs, err := cs2.Poll(pctx)
		if err != nil {
			t.Fatalf("%v (read %v)", err, seen)
		}
		for _, r := range recs {
			seen[TopicPartition{r.Topic, r.Partition}]++
		}
		if seen[ma0] > 0 {
			t.Fatalf("ma/0 read though TopicPartitions names ma/1 only")
		}
	}
	if got := cs2.Assignment(); !slices.Equal(got, []TopicPartition{ma1, mb0}) {
		t.Errorf("Assignment %v, want [ma/1 mb/0]", got)
	}
}
