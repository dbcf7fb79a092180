package segment

import (
	"errors"
	"fmt"
)

// Errors returned by this package. Test with errors.Is; the typed errors
// below wrap them with detail.
var (
	// ErrOffsetOutOfRange: the offset is below StartOffset or above
	// NextOffset. A retry with the same offset does not help; the caller
	// resets to StartOffset or NextOffset (OutOfRangeError carries both).
	ErrOffsetOutOfRange = errors.New("segment: offset out of range")
	// ErrIndexNotFound: no entry with that raft index is stored (it was
	// truncated away or not yet written). A retry does not help.
	ErrIndexNotFound = errors.New("segment: raft index not found")
	// ErrClosed: the log was closed. A retry does not help; reopen it.
	ErrClosed = errors.New("segment: log closed")
	// ErrCorrupt: stored bytes fail their checksum or framing. A retry
	// does not help; CorruptionError says where.
	ErrCorrupt = errors.New("segment: corrupt data")
	// ErrInvalidEntry: Append was given an entry it cannot store (unknown
	// type, non-contiguous raft index, bad batch framing, too large). A
	// retry with the same entries does not help.
	ErrInvalidEntry = errors.New("segment: invalid entry")
	// ErrCompactAborted: a suffix truncation ran during Compact, which
	// stopped (segments already swapped stay compacted). Running Compact
	// again helps.
	ErrCompactAborted = errors.New("segment: compaction aborted by a suffix truncation, run it again")
)

// OutOfRangeError is returned for an offset outside [Start, End]; End is
// NextOffset. errors.Is(err, ErrOffsetOutOfRange) holds for it.
type OutOfRangeError struct {
	Offset, Start, End int64
}

func (e *OutOfRangeError) Error() string {
	return fmt.Sprintf("segment: offset %d out of range [%d, %d]", e.Offset, e.Start, e.End)
}

// Unwrap lets errors.Is match ErrOffsetOutOfRange.
func (e *OutOfRangeError) Unwrap() error { return ErrOffsetOutOfRange }

// CorruptionError says where stored bytes are damaged: the segment file's
// name and the position in it of the damaged frame (or header). Recovery
// returns one from RecoveryReport when it truncated a torn tail; Read,
// ReadEntry and Verify return one for damage in stored data.
// errors.Is(err, ErrCorrupt) holds for it.
type CorruptionError struct {
	Segment string // file name, e.g. "00000000000000000000.log"
	Offset  int64  // position in the file
	Err     error  // what is wrong
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("segment: corrupt %s at position %d: %v", e.Segment, e.Offset, e.Err)
}

// Unwrap lets errors.Is match ErrCorrupt and the cause.
func (e *CorruptionError) Unwrap() []error { return []error{ErrCorrupt, e.Err} }

func invalidEntry(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidEntry, fmt.Sprintf(format, args...))
}
