package client

import "errors"

// Errors from the client itself. Errors from brokers are *apierr.Error and
// are matched with errors.Is against the apierr sentinels.
var (
	// ErrClosed: the client, producer or consumer was closed. No retry
	// helps; make a new one.
	ErrClosed = errors.New("client: closed")
	// ErrNoBrokers: New was given no broker addresses.
	ErrNoBrokers = errors.New("client: no broker addresses")
	// ErrNoLeader: metadata names no reachable leader for a partition.
	// Retriable: a leader election or a broker restart is in progress.
	ErrNoLeader = errors.New("client: partition has no leader")
	// ErrNotInGroup: a group consumer cannot commit because it is not
	// a member of its group right now (joining, or rejoining after it
	// was fenced). A commit after it has joined may succeed, for the
	// partitions it owns then; what it owned before is lost.
	ErrNotInGroup = errors.New("client: not a member of the group (joining)")
)
