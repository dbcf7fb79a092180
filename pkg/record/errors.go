package record

import (
	"errors"
	"fmt"
)

// Errors returned by this package. None of them is helped by a retry with
// the same bytes: the batch itself is wrong.
var (
	// ErrCorrupt: the batch's CRC does not match its contents. The bytes
	// were damaged in flight or on disk.
	ErrCorrupt = errors.New("record: batch CRC mismatch")
	// ErrMalformed: the batch's framing is wrong (lengths, counts, varints,
	// magic, attributes). Wrap with MalformedError for the detail.
	ErrMalformed = errors.New("record: malformed batch")
	// ErrTooLarge: the batch, or its decompressed records, exceed the limit.
	ErrTooLarge = errors.New("record: batch too large")
)

// MalformedError says what exactly is wrong with a batch. errors.Is(err,
// ErrMalformed) holds for it.
type MalformedError struct {
	Reason string
}

func (e *MalformedError) Error() string { return "record: malformed batch: " + e.Reason }

// Unwrap lets errors.Is match ErrMalformed.
func (e *MalformedError) Unwrap() error { return ErrMalformed }

func malformed(format string, args ...any) error {
	return &MalformedError{Reason: fmt.Sprintf(format, args...)}
}
