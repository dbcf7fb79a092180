package client

import (
	"time"

	"github.com/stratalog/strata/pkg/record"
)

// Header is a record header: a key and a value, both free-form; keys may
// repeat. (The same type as pkg/record's, so that no conversion is paid;
// a client needs no other package to set headers.)
type Header = record.Header

// Record is one record as the client sees it: where it goes (or came
// from), what it holds and, once produced or fetched, its offset.
type Record struct {
	Topic     string
	Partition int32 // set by the partitioner when producing (see ManualPartitioner)
	Key       []byte
	Value     []byte
	Headers   []Header
	Timestamp time.Time // zero = the time it is batched
	Offset    int64     // set on success by Produce and by fetches
}

func (r *Record) toBatchRecord() record.Record {
	return record.Record{Key: r.Key, Value: r.Value, Headers: r.Headers, Timestamp: r.Timestamp}
}

// size estimates the record's bytes in a batch, for batching decisions:
// the payload plus the per-record varint framing (at most ~20 bytes).
func (r *Record) size() int {
	n := len(r.Key) + len(r.Value) + 20
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value) + 10
	}
	return n
}
