package broker

import (
	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/metadata"
)

// Internal topics (__consumer_offsets, and any name starting with "__")
// belong to the brokers: they write them through the partition directly
// (groups.go), never through the client API. A client may read them
// (`strata consume __consumer_offsets`) but not produce to them, delete
// their records, alter their config or delete them: one forged commit or
// one trim would corrupt every group's offsets.
//
// The refusal is POLICY_VIOLATION, not retriable, with a message saying
// why. When ACLs come (issue 12, item 8), a super user may be let through
// here; until then no client is.

// refuseInternal returns the error for a client operation (a verb: "produce
// to", "delete records of", ...) on an internal topic, nil for any other
// topic.
func refuseInternal(op, topic string) error {
	if !metadata.IsInternalTopic(topic) {
		return nil
	}
	return apierr.New(v1.ErrorCode_ERROR_CODE_POLICY_VIOLATION,
		"topic %q is internal to the brokers: clients cannot %s it (reading it is allowed)", topic, op)
}
