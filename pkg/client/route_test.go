package client

// Routing by NOT_LEADER hints, against two fake brokers: the seed, whose
// metadata names itself as every partition's leader, and "the new
// leader", which the seed's NOT_LEADER replies name. The metadata never
// mentions the new leader, so reaching it at all proves the hint was used,
// and the seed's Metadata count proves no reload was needed.

import (
	"fmt"
	"testing"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
)

func notLeader(id uint32, addr string) *apierr.Error {
	return &apierr.Error{Code: v1.ErrorCode_ERROR_CODE_NOT_LEADER, Message: "not the leader", LeaderID: id, LeaderAddr: addr}
}

// twoFakes starts the seed and the new leader, each with topic t of one
// partition, and a client that knows only the seed. The backoff is long,
// so a test that waits for it would be slow: a redirect does not wait.
func twoFakes(t *testing.T) (seed, next *fakeBroker, c *Client) {
	seed, next = startFake(t), startFake(t)
	c = newTestClient(t, seed.addr, RetryBackoff(2*time.Second, 2*time.Second))
	createTopic(t, c, "t", 1)
	createTopic(t, newTestClient(t, next.addr), "t", 1)
	return seed, next, c
}

func TestProduceFollowsLeaderHint(t *testing.T) {
	seed, next, c := twoFakes(t)
	seed.failNextWith("Produce", notLeader(2, next.addr))
	p := c.NewProducer()
	defer p.Close(testCtx(t))

	start := time.Now()
	for i := range 2 {
		if err := p.ProduceSync(testCtx(t), &Record{Topic: "t", Value: fmt.Appendf(nil, "v%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("two produces took %s: the redirect backed off", d)
	}
	// The second produce went to the new leader too: the hint stays.
	if s, n, m := seed.callCount("Produce"), next.callCount("Produce"), seed.callCount("Metadata"); s != 1 || n != 2 || m != 1 {
		t.Errorf("produce calls: seed %d, new leader %d; metadata calls %d; want 1, 2, 1", s, n, m)
	}
}

func TestFetchFollowsLeaderHint(t *testing.T) {
	seed, next, c := twoFakes(t)
	nc := newTestClient(t, next.addr)
	if err := nc.NewProducer().ProduceSync(testCtx(t), &Record{Topic: "t", Value: []byte("on the new leader")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	seed.failNextWith("Fetch", notLeader(2, next.addr))
	cs, err := c.NewConsumer("t", StartAt(AtOffset(0)))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	r, err := cs.Next(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Value) != "on the new leader" {
		t.Errorf("read %q", r.Value)
	}
	if m := seed.callCount("Metadata"); m != 1 {
		t.Errorf("%d metadata calls, want 1", m)
	}
}

func TestListOffsetsFollowsLeaderHint(t *testing.T) {
	seed, next, c := twoFakes(t)
	nc := newTestClient(t, next.addr)
	if err := nc.NewProducer().ProduceSync(testCtx(t), &Record{Topic: "t"}, &Record{Topic: "t"}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	seed.failNextWith("ListOffsets", notLeader(2, next.addr))
	res, err := c.Admin().ListOffsets(testCtx(t), "t", 0, OffsetSpecLatest, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Offset != 2 {
		t.Errorf("latest offset %d, want the new leader's 2", res.Offset)
	}
}

// A hint that leads nowhere (the named leader is unreachable) gives way
// to fresh metadata.
func TestUnreachableHintFallsBackToMetadata(t *testing.T) {
	seed := startFake(t)
	c := newTestClient(t, seed.addr)
	createTopic(t, c, "t", 1)
	seed.failNextWith("Produce", notLeader(2, "127.0.0.1:1"))
	if err := c.NewProducer().ProduceSync(testCtx(t), &Record{Topic: "t"}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if s, m := seed.callCount("Produce"), seed.callCount("Metadata"); s != 2 || m != 2 {
		t.Errorf("seed: %d produce and %d metadata calls, want 2 and 2", s, m)
	}
}

// NOT_LEADER without a usable leader (none known, or the broker itself)
// reloads metadata as before.
func TestNotLeaderWithoutHintReloadsMetadata(t *testing.T) {
	seed := startFake(t)
	c := newTestClient(t, seed.addr)
	createTopic(t, c, "t", 1)
	seed.failNextWith("Produce", notLeader(0, ""), notLeader(1, seed.addr))
	if err := c.NewProducer().ProduceSync(testCtx(t), &Record{Topic: "t"}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if s, m := seed.callCount("Produce"), seed.callCount("Metadata"); s != 3 || m != 3 {
		t.Errorf("seed: %d produce and %d metadata calls, want 3 and 3", s, m)
	}
}

// Two redirects in a row (leaders named during an election) back off
// rather than spin.
func TestBouncingHintsBackOff(t *testing.T) {
	seed, next, _ := twoFakes(t)
	c2 := newTestClient(t, seed.addr, RetryBackoff(300*time.Millisecond, 300*time.Millisecond))
	seed.failNextWith("Produce", notLeader(2, next.addr), notLeader(2, next.addr))
	next.failNextWith("Produce", notLeader(1, seed.addr))
	start := time.Now()
	if err := c2.NewProducer().ProduceSync(testCtx(t), &Record{Topic: "t"}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// seed -> next (at once) -> seed (backs off) -> next (backs off).
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("took %s: bouncing redirects did not back off", d)
	}
	if s, n := seed.callCount("Produce"), next.callCount("Produce"); s != 2 || n != 2 {
		t.Errorf("produce calls: seed %d, new leader %d; want 2 and 2", s, n)
	}
}
