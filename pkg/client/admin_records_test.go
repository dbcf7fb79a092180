package client

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
)

// produceN writes n single-record batches to each of the topic's first
// parts partitions.
func produceN(t *testing.T, c *Client, topic string, parts int32, n int) {
	t.Helper()
	p := c.NewProducer(RecordPartitioner(ManualPartitioner()))
	defer p.Close(testCtx(t))
	for part := range parts {
		for i := range n {
			if err := p.ProduceSync(testCtx(t), &Record{Topic: topic, Partition: part, Value: fmt.Appendf(nil, "%d", i)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestDeleteRecords(t *testing.T) {
	f := startFake(t)
	c := newTestClient(t, f.addr)
	createTopic(t, c, "t", 3)
	produceN(t, c, "t", 3, 5)
	f.failNext("DeleteRecords", v1.ErrorCode_ERROR_CODE_UNAVAILABLE)

	got, err := c.Admin().DeleteRecords(testCtx(t), "t", map[int32]int64{0: 2, 1: BeforeHighWatermark, 2: 9})
	if got[0] != 2 || got[1] != 5 || len(got) != 2 {
		t.Errorf("log starts %v, want 0:2 1:5", got)
	}
	if !errors.Is(err, apierr.ErrOffsetOutOfRange) || !strings.Contains(err.Error(), "delete records t/2") {
		t.Errorf("offset past the end: %v", err)
	}
	if n := f.callCount("DeleteRecords"); n != 2 {
		t.Errorf("%d DeleteRecords calls; want the UNAVAILABLE one retried once", n)
	}

	// Deleted records are gone for a consumer, which resets past them.
	cs, err := c.NewConsumer("t", Partitions(0), StartAt(AtOffset(0)), ResetPolicy(NoReset()), FetchMaxWait(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	_, err = cs.Poll(testCtx(t))
	var ae *apierr.Error
	if !errors.As(err, &ae) || ae.Code != v1.ErrorCode_ERROR_CODE_OFFSET_OUT_OF_RANGE || ae.LogStartOffset != 2 || ae.HighWatermark != 5 ||
		err.Error() != "t/0: offset 0 is not stored; valid offsets are 2 to 5 (reset policy none)" {
		t.Errorf("poll with reset policy none: %v (%+v)", err, ae)
	}
	if pos := cs.Positions()[TopicPartition{"t", 0}]; pos != 0 {
		t.Errorf("position moved to %d under reset policy none", pos)
	}
}

func TestDeleteRecordsErrors(t *testing.T) {
	f := startFake(t)
	c := newTestClient(t, f.addr)
	createTopic(t, c, "t", 2)
	f.setImmutable("t")

	got, err := c.Admin().DeleteRecords(testCtx(t), "t", map[int32]int64{0: 0, 1: 0})
	if len(got) != 0 || !errors.Is(err, apierr.ErrPolicyViolation) || strings.Count(err.Error(), "immutable") != 2 {
		t.Errorf("immutable topic: %v, %v", got, err)
	}
	if _, err := c.Admin().DeleteRecords(testCtx(t), "t", map[int32]int64{7: 0}); !errors.Is(err, apierr.ErrUnknownPartition) {
		t.Errorf("unknown partition: %v", err)
	}
	if _, err := c.Admin().DeleteRecords(testCtx(t), "nope", map[int32]int64{0: 0}); !errors.Is(err, apierr.ErrUnknownTopic) {
		t.Errorf("unknown topic: %v", err)
	}
	if _, err := c.Admin().DeleteRecords(testCtx(t), "t", map[int32]int64{0: -2}); !errors.Is(err, apierr.ErrInvalidRequest) {
		t.Errorf("offset -2: %v", err)
	}
	if n := f.callCount("DeleteRecords"); n != 1 {
		t.Errorf("%d DeleteRecords calls; only the immutable one should reach the broker", n)
	}
}

func TestDeleteRecordsFollowsLeaderHint(t *testing.T) {
	seed, next, c := twoFakes(t)
	produceN(t, newTestClient(t, next.addr), "t", 1, 3)
	seed.failNextWith("DeleteRecords", notLeader(2, next.addr))
	got, err := c.Admin().DeleteRecords(testCtx(t), "t", map[int32]int64{0: BeforeHighWatermark})
	if err != nil || got[0] != 3 {
		t.Fatalf("got %v, %v; want the new leader's 0:3", got, err)
	}
	if m := seed.callCount("Metadata"); m != 1 {
		t.Errorf("%d metadata calls, want 1", m)
	}
}
