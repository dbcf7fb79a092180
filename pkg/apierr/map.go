package apierr

import (
	"context"
	"errors"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/record"
)

// FromError maps any error a broker meets to an *Error. This is the one
// place where package errors become API codes: packages below the broker
// return their own sentinels (or an *Error for client-facing conditions),
// and the gRPC handlers pass whatever they get through here.
func FromError(err error) *Error {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, record.ErrTooLarge):
		return &Error{Code: v1.ErrorCode_ERROR_CODE_RECORD_TOO_LARGE, Message: err.Error()}
	case errors.Is(err, record.ErrCorrupt), errors.Is(err, record.ErrMalformed):
		return &Error{Code: v1.ErrorCode_ERROR_CODE_CORRUPT_BATCH, Message: err.Error()}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &Error{Code: v1.ErrorCode_ERROR_CODE_UNAVAILABLE, Message: "request timed out on the broker: " + err.Error()}
	}
	if m := storageError(err); m != nil {
		return m
	}
	return &Error{Code: v1.ErrorCode_ERROR_CODE_UNKNOWN, Message: err.Error()}
}
