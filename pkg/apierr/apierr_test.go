package apierr

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/record"
	"github.com/stratalog/strata/pkg/segment"
)

func TestFromErrorMapsPackageErrors(t *testing.T) {
	cases := []struct {
		err       error
		want      *Error
		retriable bool
	}{
		{fmt.Errorf("batch 0: %w", record.ErrCorrupt), ErrCorruptBatch, false},
		{fmt.Errorf("batch 0: %w", &record.MalformedError{Reason: "x"}), ErrCorruptBatch, false},
		{fmt.Errorf("batch 0: %w", record.ErrTooLarge), ErrRecordTooLarge, false},
		{&segment.OutOfRangeError{Offset: 9, Start: 2, End: 5}, ErrOffsetOutOfRange, false},
		{&segment.CorruptionError{Segment: "0.log", Offset: 7, Err: errors.New("crc")}, ErrStorage, true},
		{segment.ErrClosed, ErrUnavailable, true},
		{context.DeadlineExceeded, ErrUnavailable, true},
		{New(v1.ErrorCode_ERROR_CODE_NOT_LEADER, "not me"), ErrNotLeader, true},
		{errors.New("surprise"), ErrUnknown, false},
	}
	for _, c := range cases {
		got := FromError(c.err)
		if !errors.Is(got, c.want) || got.Retriable() != c.retriable {
			t.Errorf("FromError(%v) = %v (code %v, retriable %v), want %v retriable %v", c.err, got, got.Code, got.Retriable(), c.want.Code, c.retriable)
		}
	}
	var e *Error
	if errors.As(FromError(&segment.OutOfRangeError{Offset: 9, Start: 2, End: 5}), &e); e.LogStartOffset != 2 || e.HighWatermark != 5 {
		t.Errorf("out of range lost its range: %+v", e)
	}
}

func TestStatusRoundTrip(t *testing.T) {
	in := &Error{Code: v1.ErrorCode_ERROR_CODE_OFFSET_OUT_OF_RANGE, Message: "offset 9 is outside", LogStartOffset: 2, HighWatermark: 5}
	st := ToStatus(in)
	if status.Code(st) != codes.OutOfRange {
		t.Fatalf("grpc code %v", status.Code(st))
	}
	out := FromStatus(st)
	var e *Error
	if !errors.As(out, &e) || e.Code != in.Code || e.Message != in.Message || e.LogStartOffset != 2 || e.HighWatermark != 5 {
		t.Fatalf("round trip: %#v", out)
	}
	if FromStatus(nil) != nil || ToStatus(nil) != nil || FromProto(nil) != nil || ToProto(nil) != nil {
		t.Fatal("nil must stay nil")
	}
	if !errors.Is(FromStatus(status.Error(codes.Unavailable, "connection refused")), ErrUnavailable) {
		t.Fatal("transport unavailability must map to UNAVAILABLE")
	}
	if !errors.Is(FromStatus(status.Error(codes.DeadlineExceeded, "slow")), context.DeadlineExceeded) {
		t.Fatal("deadline must map to context.DeadlineExceeded")
	}
}

func TestEveryCodeHasAnEntry(t *testing.T) {
	for code := range v1.ErrorCode_name {
		c := v1.ErrorCode(code)
		if c == v1.ErrorCode_ERROR_CODE_NONE {
			continue
		}
		if _, ok := table[c]; !ok {
			t.Errorf("code %v has no entry in the table", c)
		}
	}
}
