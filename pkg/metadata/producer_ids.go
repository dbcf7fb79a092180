package metadata

import (
	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
)

// Producer ids (issue 14): every idempotent producer gets an id unique in
// the cluster for ever, across restarts and failovers, from the broker it
// asks. Brokers take ids in blocks from the metadata quorum, as Kafka's
// KIP-730 does, so that handing one out needs no quorum round trip:
//
//	state.NextProducerID = 5000
//	broker 2: AllocateProducerIDs{From: 5000, Count: 1000} → applied: NextProducerID = 6000,
//	          broker 2 hands out 5000..5999
//	broker 3: AllocateProducerIDs{From: 5000, ...}          → refused (taken): reload, ask from 6000
//
// The change is a compare-and-set on NextProducerID: the proposer names
// the block it wants, so it knows the block it got without a result from
// raft, and two brokers asking at once cannot get the same ids.

// MaxProducerIDBlock bounds one allocation.
const MaxProducerIDBlock = 1 << 20

// AllocateProducerIDs takes the ids From..From+Count-1 for a broker; it
// applies only if From is the cluster's next free id.
type AllocateProducerIDs struct {
	Broker NodeID `json:"broker"`
	From   int64  `json:"from"`
	Count  int64  `json:"count"`
}

func (AllocateProducerIDs) isChange() {}

// ErrProducerIDsTaken: an AllocateProducerIDs named ids another broker
// took first. Retriable: with the next free id from fresh metadata.
var errProducerIDsTaken = apierr.New(v1.ErrorCode_ERROR_CODE_UNAVAILABLE, "producer ids taken by another broker meanwhile; retry with the next free id")

func (s *state) applyProducerIDs(c AllocateProducerIDs) error {
	if c.From != s.NextProducerID {
		return errProducerIDsTaken
	}
	s.NextProducerID = c.From + c.Count
	return nil
}

func validateProducerIDs(c AllocateProducerIDs) error {
	if c.From < 0 || c.Count < 1 || c.Count > MaxProducerIDBlock || c.From > 1<<62 {
		return invalidChange("producer id block %d+%d is out of range (count 1 to %d)", c.From, c.Count, MaxProducerIDBlock)
	}
	return nil
}

// NextProducerID is the first producer id no broker has taken, as this
// broker's copy of the metadata knows it.
func (s *RaftStore) NextProducerID() int64 { return s.fsm.read().NextProducerID }
