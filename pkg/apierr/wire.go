package apierr

import (
	"context"
	"errors"

	v1 "github.com/stratalog/strata/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ToProto turns err into the wire form; nil stays nil.
func ToProto(err error) *v1.Error {
	if err == nil {
		return nil
	}
	e := FromError(err)
	return &v1.Error{
		Code:           e.Code,
		Message:        e.Error(),
		Retriable:      e.Retriable(),
		LogStartOffset: e.LogStartOffset,
		HighWatermark:  e.HighWatermark,
		LeaderId:       e.LeaderID,
		LeaderAddr:     e.LeaderAddr,
	}
}

// FromProto turns a wire error into an *Error; nil or NONE gives nil.
func FromProto(p *v1.Error) error {
	if p == nil || p.Code == v1.ErrorCode_ERROR_CODE_NONE {
		return nil
	}
	return &Error{
		Code:           p.Code,
		Message:        p.Message,
		LogStartOffset: p.LogStartOffset,
		HighWatermark:  p.HighWatermark,
		LeaderID:       p.LeaderId,
		LeaderAddr:     p.LeaderAddr,
	}
}

// grpcCode is the gRPC status code a whole-call error travels with.
func grpcCode(c Code) codes.Code {
	switch c {
	case v1.ErrorCode_ERROR_CODE_UNKNOWN_TOPIC, v1.ErrorCode_ERROR_CODE_UNKNOWN_PARTITION:
		return codes.NotFound
	case v1.ErrorCode_ERROR_CODE_TOPIC_EXISTS:
		return codes.AlreadyExists
	case v1.ErrorCode_ERROR_CODE_OFFSET_OUT_OF_RANGE:
		return codes.OutOfRange
	case v1.ErrorCode_ERROR_CODE_NOT_LEADER, v1.ErrorCode_ERROR_CODE_UNAVAILABLE, v1.ErrorCode_ERROR_CODE_STORAGE,
		v1.ErrorCode_ERROR_CODE_NOT_COORDINATOR:
		return codes.Unavailable
	case v1.ErrorCode_ERROR_CODE_POLICY_VIOLATION, v1.ErrorCode_ERROR_CODE_GROUP_NOT_EMPTY,
		v1.ErrorCode_ERROR_CODE_UNKNOWN_MEMBER, v1.ErrorCode_ERROR_CODE_FENCED_MEMBER_EPOCH,
		v1.ErrorCode_ERROR_CODE_OUT_OF_ORDER_SEQUENCE, v1.ErrorCode_ERROR_CODE_PRODUCER_FENCED,
		v1.ErrorCode_ERROR_CODE_UNKNOWN_PRODUCER_ID:
		return codes.FailedPrecondition
	case v1.ErrorCode_ERROR_CODE_UNKNOWN_GROUP, v1.ErrorCode_ERROR_CODE_UNKNOWN_USER:
		return codes.NotFound
	case v1.ErrorCode_ERROR_CODE_AUTHENTICATION_FAILED:
		return codes.Unauthenticated
	case v1.ErrorCode_ERROR_CODE_AUTHORIZATION_FAILED:
		return codes.PermissionDenied
	case v1.ErrorCode_ERROR_CODE_UNKNOWN:
		return codes.Internal
	}
	return codes.InvalidArgument
}

// ToStatus turns err into a gRPC status error whose details carry the
// v1.Error, for calls that fail as a whole.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	p := ToProto(err)
	st, derr := status.New(grpcCode(p.Code), p.Message).WithDetails(p)
	if derr != nil {
		return status.Error(grpcCode(p.Code), p.Message)
	}
	return st.Err()
}

// FromStatus turns an error from a gRPC call back into an *Error when the
// status carries one; context errors and plain transport errors become
// ErrUnavailable-coded errors only when gRPC says the broker could not be
// reached, and are otherwise returned as they are.
func FromStatus(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	for _, d := range st.Details() {
		if p, ok := d.(*v1.Error); ok {
			return FromProto(p)
		}
	}
	switch st.Code() {
	case codes.Unavailable:
		return &Error{Code: v1.ErrorCode_ERROR_CODE_UNAVAILABLE, Message: "broker unreachable: " + st.Message()}
	case codes.Canceled:
		return context.Canceled
	case codes.DeadlineExceeded:
		return context.DeadlineExceeded
	}
	return err
}
