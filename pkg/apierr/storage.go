package apierr

import (
	"errors"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/segment"
)

// storageError maps the storage engine's errors, or returns nil.
func storageError(err error) *Error {
	var oor *segment.OutOfRangeError
	switch {
	case errors.As(err, &oor):
		return &Error{Code: v1.ErrorCode_ERROR_CODE_OFFSET_OUT_OF_RANGE, Message: err.Error(),
			LogStartOffset: oor.Start, HighWatermark: oor.End}
	case errors.Is(err, segment.ErrCorrupt):
		return &Error{Code: v1.ErrorCode_ERROR_CODE_STORAGE, Message: "the partition's log is damaged on this broker: " + err.Error()}
	case errors.Is(err, segment.ErrClosed):
		return &Error{Code: v1.ErrorCode_ERROR_CODE_UNAVAILABLE, Message: "partition is closing"}
	}
	return nil
}
