package record

import (
	"fmt"
	"time"
)

// Offset is a record's position in its partition's log: 0, 1, 2, ... in
// append order, identical on every replica.
type Offset = int64

// Header is one key/value pair of record metadata. Keys may repeat.
type Header struct {
	Key   string
	Value []byte
}

// Record is one key/value record with headers and a timestamp.
type Record struct {
	Key       []byte // nil = null key
	Value     []byte // nil = tombstone
	Headers   []Header
	Timestamp time.Time // zero = now, when encoded; the batch's max timestamp for log-append-time batches, when decoded
	Offset    Offset    // set by Decode; ignored by Encode
}

// String prints a record for debugging.
func (r Record) String() string {
	return fmt.Sprintf("offset=%d key=%q value=%d bytes headers=%d ts=%s",
		r.Offset, r.Key, len(r.Value), len(r.Headers), r.Timestamp.UTC().Format(time.RFC3339Nano))
}
