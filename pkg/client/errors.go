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
)
