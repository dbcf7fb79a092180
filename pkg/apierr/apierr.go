// Package apierr is the one place where Strata's errors meet the wire: every
// error a broker returns to a client, and every error a client reports to
// its caller, is an *Error with a Code from api/v1.
//
// Brokers turn package errors (segment, record, partition, metadata) into
// codes with FromError; clients turn wire errors back into *Error with
// FromProto and FromStatus, and test them with errors.Is against the
// sentinels below (errors.Is(err, apierr.ErrUnknownTopic)) or with Code.
//
// Whether a retry can help is a property of the code (Retriable), decided
// here and nowhere else, like franz-go's kerr.
package apierr

import (
	"errors"
	"fmt"

	v1 "github.com/stratalog/strata/api/v1"
)

// Code is a typed error code from the API.
type Code = v1.ErrorCode

// Error is an API error: a code, a message for humans and, for some codes,
// the facts a client needs to act (the valid offset range, the leader).
type Error struct {
	Code    Code
	Message string
	// For offset out of range: the valid range [LogStartOffset, HighWatermark].
	LogStartOffset int64
	HighWatermark  int64
	// For not leader: the leader, when known.
	LeaderID   uint32
	LeaderAddr string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return info(e.Code).text
	}
	return e.Message
}

// Retriable reports whether the same request may succeed later.
func (e *Error) Retriable() bool { return info(e.Code).retriable }

// Is matches another *Error by code, so the sentinels work with errors.Is.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Sentinels for errors.Is; they carry only a code.
var (
	ErrUnknown            = &Error{Code: v1.ErrorCode_ERROR_CODE_UNKNOWN}
	ErrUnknownTopic       = &Error{Code: v1.ErrorCode_ERROR_CODE_UNKNOWN_TOPIC}
	ErrUnknownPartition   = &Error{Code: v1.ErrorCode_ERROR_CODE_UNKNOWN_PARTITION}
	ErrOffsetOutOfRange   = &Error{Code: v1.ErrorCode_ERROR_CODE_OFFSET_OUT_OF_RANGE}
	ErrRecordTooLarge     = &Error{Code: v1.ErrorCode_ERROR_CODE_RECORD_TOO_LARGE}
	ErrInvalidConfig      = &Error{Code: v1.ErrorCode_ERROR_CODE_INVALID_CONFIG}
	ErrCorruptBatch       = &Error{Code: v1.ErrorCode_ERROR_CODE_CORRUPT_BATCH}
	ErrNotLeader          = &Error{Code: v1.ErrorCode_ERROR_CODE_NOT_LEADER}
	ErrTopicExists        = &Error{Code: v1.ErrorCode_ERROR_CODE_TOPIC_EXISTS}
	ErrInvalidTopic       = &Error{Code: v1.ErrorCode_ERROR_CODE_INVALID_TOPIC}
	ErrInvalidPartitions  = &Error{Code: v1.ErrorCode_ERROR_CODE_INVALID_PARTITIONS}
	ErrInvalidRequest     = &Error{Code: v1.ErrorCode_ERROR_CODE_INVALID_REQUEST}
	ErrStorage            = &Error{Code: v1.ErrorCode_ERROR_CODE_STORAGE}
	ErrUnavailable        = &Error{Code: v1.ErrorCode_ERROR_CODE_UNAVAILABLE}
	ErrInvalidReplication = &Error{Code: v1.ErrorCode_ERROR_CODE_INVALID_REPLICATION}
	ErrPolicyViolation    = &Error{Code: v1.ErrorCode_ERROR_CODE_POLICY_VIOLATION}
	ErrNotCoordinator     = &Error{Code: v1.ErrorCode_ERROR_CODE_NOT_COORDINATOR}
	ErrUnknownMember      = &Error{Code: v1.ErrorCode_ERROR_CODE_UNKNOWN_MEMBER}
	ErrFencedMemberEpoch  = &Error{Code: v1.ErrorCode_ERROR_CODE_FENCED_MEMBER_EPOCH}
	ErrGroupNotEmpty      = &Error{Code: v1.ErrorCode_ERROR_CODE_GROUP_NOT_EMPTY}
	ErrUnknownGroup       = &Error{Code: v1.ErrorCode_ERROR_CODE_UNKNOWN_GROUP}
	ErrAuthentication     = &Error{Code: v1.ErrorCode_ERROR_CODE_AUTHENTICATION_FAILED}
	ErrAuthorization      = &Error{Code: v1.ErrorCode_ERROR_CODE_AUTHORIZATION_FAILED}
	ErrUnknownUser        = &Error{Code: v1.ErrorCode_ERROR_CODE_UNKNOWN_USER}
	ErrOutOfOrderSequence = &Error{Code: v1.ErrorCode_ERROR_CODE_OUT_OF_ORDER_SEQUENCE}
	ErrProducerFenced     = &Error{Code: v1.ErrorCode_ERROR_CODE_PRODUCER_FENCED}
	ErrUnknownProducerID  = &Error{Code: v1.ErrorCode_ERROR_CODE_UNKNOWN_PRODUCER_ID}
)

// New makes an *Error with a formatted message.
func New(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

type codeInfo struct {
	text      string
	retriable bool
}

// The table: what each code means and whether a retry helps.
var table = map[Code]codeInfo{
	v1.ErrorCode_ERROR_CODE_UNKNOWN:               {"unexpected server error", false},
	v1.ErrorCode_ERROR_CODE_UNKNOWN_TOPIC:         {"unknown topic: create it first (strata topic create)", false},
	v1.ErrorCode_ERROR_CODE_UNKNOWN_PARTITION:     {"unknown partition", false},
	v1.ErrorCode_ERROR_CODE_OFFSET_OUT_OF_RANGE:   {"offset out of range", false},
	v1.ErrorCode_ERROR_CODE_RECORD_TOO_LARGE:      {"record batch larger than max.message.bytes", false},
	v1.ErrorCode_ERROR_CODE_INVALID_CONFIG:        {"invalid config", false},
	v1.ErrorCode_ERROR_CODE_CORRUPT_BATCH:         {"corrupt record batch", false},
	v1.ErrorCode_ERROR_CODE_NOT_LEADER:            {"broker is not the partition leader", true},
	v1.ErrorCode_ERROR_CODE_TOPIC_EXISTS:          {"topic already exists", false},
	v1.ErrorCode_ERROR_CODE_INVALID_TOPIC:         {"invalid topic name", false},
	v1.ErrorCode_ERROR_CODE_INVALID_PARTITIONS:    {"invalid partition count", false},
	v1.ErrorCode_ERROR_CODE_INVALID_REQUEST:       {"invalid request", false},
	v1.ErrorCode_ERROR_CODE_STORAGE:               {"storage error on the broker", true},
	v1.ErrorCode_ERROR_CODE_UNAVAILABLE:           {"broker unavailable", true},
	v1.ErrorCode_ERROR_CODE_INVALID_REPLICATION:   {"invalid replication factor", false},
	v1.ErrorCode_ERROR_CODE_POLICY_VIOLATION:      {"refused by topic policy", false},
	v1.ErrorCode_ERROR_CODE_NOT_COORDINATOR:       {"broker is not the group's coordinator", true},
	v1.ErrorCode_ERROR_CODE_UNKNOWN_MEMBER:        {"unknown group member: rejoin", false},
	v1.ErrorCode_ERROR_CODE_FENCED_MEMBER_EPOCH:   {"stale member epoch: rejoin", false},
	v1.ErrorCode_ERROR_CODE_GROUP_NOT_EMPTY:       {"the group has active members", false},
	v1.ErrorCode_ERROR_CODE_UNKNOWN_GROUP:         {"unknown group", false},
	v1.ErrorCode_ERROR_CODE_AUTHENTICATION_FAILED: {"authentication failed: pass --user and --password (or STRATA_USER, STRATA_PASSWORD)", false},
	v1.ErrorCode_ERROR_CODE_AUTHORIZATION_FAILED:  {"not authorized: an ACL must allow the call (strata acl create)", false},
	v1.ErrorCode_ERROR_CODE_UNKNOWN_USER:          {"unknown user", false},
	v1.ErrorCode_ERROR_CODE_OUT_OF_ORDER_SEQUENCE: {"out of order sequence: a batch before this one was lost", false},
	v1.ErrorCode_ERROR_CODE_PRODUCER_FENCED:       {"producer fenced: a newer epoch of this producer exists", false},
	v1.ErrorCode_ERROR_CODE_UNKNOWN_PRODUCER_ID:   {"unknown producer id: start a new one", false},
}

func info(c Code) codeInfo {
	if i, ok := table[c]; ok {
		return i
	}
	return codeInfo{fmt.Sprintf("error code %d", c), false}
}

// Retriable reports whether err, if it is an *Error, may succeed on retry.
// Transport errors (not an *Error) are the caller's to judge.
func Retriable(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Retriable()
}
