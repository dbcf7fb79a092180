package assign

import "errors"

// Errors of this package. All of them report invalid input from the
// caller (the group coordinator): retrying with the same input does not
// help, fixing the input does.
var (
	// ErrUnknownAssignor: a member asked for an assignor this broker does
	// not have. Answer the member with an error naming the valid ones.
	ErrUnknownAssignor = errors.New(`assign: unknown assignor; use "uniform", "range" or "roundrobin"`)
	// ErrEmptyMemberID: a member has no ID. The coordinator must give
	// every member an ID before assigning partitions.
	ErrEmptyMemberID = errors.New("assign: empty member ID; give the member an ID before assigning")
	// ErrDuplicateMember: two members share an ID. Fence the older one
	// before assigning.
	ErrDuplicateMember = errors.New("assign: duplicate member ID; fence the older member before assigning")
	// ErrNegativePartitions: a topic has a negative partition count. Pass
	// the partition count from the metadata as it is.
	ErrNegativePartitions = errors.New("assign: negative partition count; pass the count from the topic's metadata")
)
