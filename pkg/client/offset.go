package client

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Offset says where a consumer starts reading each partition.
type Offset struct {
	kind offsetKind
	n    int64
	t    time.Time
}

type offsetKind uint8

const (
	offsetEarliest offsetKind = iota // zero value: from the start
	offsetLatest
	offsetExact
	offsetFromEnd
	offsetTime
	offsetNone // only a ResetPolicy: do not reset
)

// Earliest starts at the first stored record (the log start offset).
func Earliest() Offset { return Offset{kind: offsetEarliest} }

// Latest starts at the high watermark: only records produced from now on.
func Latest() Offset { return Offset{kind: offsetLatest} }

// AtOffset starts at offset n in every partition. If n is outside the
// stored range, the consumer's ResetPolicy applies.
func AtOffset(n int64) Offset { return Offset{kind: offsetExact, n: n} }

// FromEnd starts n records before the high watermark of each partition
// (at the log start if fewer are stored).
func FromEnd(n int64) Offset { return Offset{kind: offsetFromEnd, n: n} }

// AtTime starts at the first record whose timestamp is at or after t (at
// the high watermark if there is none).
func AtTime(t time.Time) Offset { return Offset{kind: offsetTime, t: t} }

// NoReset is a ResetPolicy, not a start: a position out of the stored
// range is not moved, and Poll returns the broker's OFFSET_OUT_OF_RANGE
// error (an *apierr.Error whose LogStartOffset and HighWatermark give the
// valid range), like Kafka's auto.offset.reset=none.
func NoReset() Offset { return Offset{kind: offsetNone} }

func (o Offset) String() string {
	switch o.kind {
	case offsetEarliest:
		return "start"
	case offsetLatest:
		return "end"
	case offsetExact:
		return strconv.FormatInt(o.n, 10)
	case offsetFromEnd:
		return "-" + strconv.FormatInt(o.n, 10)
	case offsetTime:
		return "@" + o.t.UTC().Format(time.RFC3339Nano)
	case offsetNone:
		return "none"
	}
	return "?"
}

// ParseOffset reads the offset syntax of the strata CLI (like rpk's):
//
//	start, earliest, oldest    Earliest()
//	end, latest, newest        Latest()
//	N                          AtOffset(N)
//	-N                         FromEnd(N)
//	@2026-01-02T15:04:05Z      AtTime (RFC 3339)
//	@1700000000000             AtTime (Unix milliseconds)
func ParseOffset(s string) (Offset, error) {
	switch strings.ToLower(s) {
	case "start", "earliest", "oldest", "beginning":
		return Earliest(), nil
	case "end", "latest", "newest":
		return Latest(), nil
	}
	bad := func(why string) (Offset, error) {
		return Offset{}, fmt.Errorf("offset %q: %s (want start, end, N, -N, @RFC3339 or @unix-ms)", s, why)
	}
	if ts, ok := strings.CutPrefix(s, "@"); ok {
		if ts == "" {
			return bad("missing time after @")
		}
		if ms, err := strconv.ParseInt(ts, 10, 64); err == nil {
			return AtTime(time.UnixMilli(ms)), nil
		}
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return bad("time is neither RFC 3339 nor Unix milliseconds")
		}
		return AtTime(t), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return bad("not a number")
	}
	if strings.HasPrefix(s, "-") {
		return FromEnd(-n), nil
	}
	return AtOffset(n), nil
}
