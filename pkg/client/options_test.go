package client

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/pkg/record"
)

func TestNewValidates(t *testing.T) {
	if _, err := New(nil); !errors.Is(err, ErrNoBrokers) {
		t.Errorf("no brokers: %v", err)
	}
	if _, err := New([]string{""}); !errors.Is(err, ErrNoBrokers) {
		t.Errorf("empty broker: %v", err)
	}
	for name, opt := range map[string]Opt{
		"MetadataMaxAge": MetadataMaxAge(0),
		"RetryTimeout":   RetryTimeout(-time.Second),
		"RetryBackoff":   RetryBackoff(time.Second, time.Millisecond),
		"Logger":         Logger(nil),
	} {
		_, err := New([]string{"127.0.0.1:1"}, opt)
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: err %v, want one naming the option", name, err)
		}
	}
	c, err := New([]string{"127.0.0.1:1"}, RetryTimeout(0), RetryBackoff(time.Millisecond, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	c.Close() // twice is fine
}

func TestProducerOptionErrorsFailRecords(t *testing.T) {
	c, err := New([]string{"127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for name, opt := range map[string]ProducerOpt{
		"Linger":             Linger(-1),
		"BatchMaxBytes":      BatchMaxBytes(0),
		"MaxBufferedRecords": MaxBufferedRecords(0),
		"Compression":        Compression(record.Compression(9)),
		"RecordPartitioner":  RecordPartitioner(nil),
		"RequiredAcks":       RequiredAcks(Acks(7)),
		"DeliveryTimeout":    DeliveryTimeout(0),
		"MaxInFlight":        MaxInFlight(2),
	} {
		p := c.NewProducer(opt)
		err := p.ProduceSync(context.Background(), &Record{Topic: "t"}).FirstErr()
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: err %v, want one naming the option", name, err)
		}
		if err := p.Close(context.Background()); err != nil {
			t.Errorf("%s: close: %v", name, err)
		}
	}
}

func TestConsumerOptionValidation(t *testing.T) {
	c, err := New([]string{"127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for name, opt := range map[string]ConsumerOpt{
		"Partitions":    Partitions(1, 1),
		"StartAt":       StartAt(AtOffset(-1)),
		"ResetPolicy":   ResetPolicy(AtOffset(3)),
		"FetchMaxBytes": FetchMaxBytes(0),
		"FetchMaxWait":  FetchMaxWait(-1),
	} {
		if _, err := c.NewConsumer("t", opt); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: err %v, want one naming the option", name, err)
		}
	}
	if _, err := c.NewConsumer(""); err == nil {
		t.Error("empty topic accepted")
	}
	cs, err := c.NewConsumer("t", Partitions(0, 2), StartAt(FromEnd(5)), ResetPolicy(Latest()))
	if err != nil {
		t.Fatal(err)
	}
	cs.Close()

	// Several topics: partitions must say whose they are.
	for _, tc := range []struct {
		topics []string
		opts   []ConsumerOpt
		want   string
	}{
		{nil, nil, "no topics"},
		{[]string{"a", ""}, nil, "empty topic"},
		{[]string{"a", "b", "a"}, nil, `"a" given twice`},
		{[]string{"a", "b"}, []ConsumerOpt{Partitions(0)}, "use TopicPartitions"},
		{[]string{"a", "b"}, []ConsumerOpt{TopicPartitions(map[string][]int32{"c": {0}})}, `topic "c", which the consumer does not read`},
		{[]string{"a"}, []ConsumerOpt{Partitions(0), TopicPartitions(map[string][]int32{"a": {1}})}, "give one"},
		{[]string{"a"}, []ConsumerOpt{TopicPartitions(map[string][]int32{"a": {1, -1}})}, "TopicPartitions: topic \"a\": partition -1 is negative"},
		{[]string{"a"}, []ConsumerOpt{TopicPartitions(map[string][]int32{"a": {}})}, "leave it out"},
	} {
		if _, err := c.NewConsumerTopics(tc.topics, tc.opts...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewConsumerTopics(%q): err %v, want one saying %q", tc.topics, err, tc.want)
		}
	}
	cs, err = c.NewConsumerTopics([]string{"b", "a"}, TopicPartitions(map[string][]int32{"a": {1}}))
	if err != nil {
		t.Fatal(err)
	}
	if got := cs.Topics(); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Errorf("Topics() = %v, want [a b]", got)
	}
	cs.Close()
	if _, err := c.NewGroupConsumer("g", Topics("a"), FetchOpts(TopicPartitions(map[string][]int32{"a": {0}}))); err == nil || !strings.Contains(err.Error(), "do not apply to a group") {
		t.Errorf("group with TopicPartitions: err %v", err)
	}
}

func TestParseAcks(t *testing.T) {
	for in, want := range map[string]Acks{"all": AcksQuorum, "quorum": AcksQuorum, "-1": AcksQuorum, "1": AcksLeader, "leader": AcksLeader, "0": AcksNone, "none": AcksNone} {
		if got, err := ParseAcks(in); err != nil || got != want {
			t.Errorf("ParseAcks(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseAcks("2"); err == nil {
		t.Error("ParseAcks(2) accepted")
	}
}
