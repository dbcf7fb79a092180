package client

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
)

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

// AdvertisedUnreachableError: a broker that the cluster's metadata named
// could not be reached at the address it advertises (on the listener this
// client came in on). Unlike a --brokers (bootstrap) address that does not
// answer, the address came from the brokers: the usual cause is an
// advertised address this host cannot resolve or route to (a container
// name, a private IP), fixed on the broker with --advertised-listeners or
// --advertise-host, or by bootstrapping through a listener meant for
// clients where this one runs. Retriable while the broker may be
// restarting: it unwraps to the UNAVAILABLE error.
type AdvertisedUnreachableError struct {
	NodeID   uint32 // the broker the metadata names
	Addr     string // the address it advertises
	Listener string // the listener the address is for ("" if the broker did not say)
	Err      error
	// Seed: the address is also in the client's own broker list, so it is
	// not a bad advertisement: the broker is not answering there.
	Seed bool
}

func (e *AdvertisedUnreachableError) Error() string {
	if e.Seed {
		cause := CauseOther
		var ue *UnreachableError
		if errors.As(classifyUnreachable(e.Addr, e.Err), &ue) {
			cause = ue.Cause
		}
		return fmt.Sprintf("cannot reach broker %d at %s: %s: the broker is not answering there (stopped, restarting or cut off); "+
			"the address is right: the client was given it and the cluster advertises it", e.NodeID, e.Addr, cause)
	}
	l := ""
	if e.Listener != "" {
		l = " for listener " + e.Listener
	}
	return fmt.Sprintf("cannot reach broker %d at %s, the address the cluster's metadata advertises for it%s (%v): "+
		"this host must resolve and reach it; set that broker's --advertised-listeners, or bootstrap through a listener meant for clients here",
		e.NodeID, e.Addr, l, e.Err)
}

func (e *AdvertisedUnreachableError) Unwrap() error { return e.Err }

// unreachable reports whether err says a broker could not be reached
// (gRPC Unavailable, as apierr.FromStatus maps it).
func unreachable(err error) bool {
	var e *apierr.Error
	return errors.As(err, &e) && e.Code == v1.ErrorCode_ERROR_CODE_UNAVAILABLE && strings.HasPrefix(e.Message, "broker unreachable")
}

// advertisedErr turns an unreachable error from the broker at addr into an
// AdvertisedUnreachableError when the cached metadata names a broker at
// that address.
func (m *metaCache) advertisedErr(addr string, err error) error {
	var already *AdvertisedUnreachableError
	if err == nil || !unreachable(err) || errors.As(err, &already) {
		return err
	}
	s, _ := m.current()
	if s == nil {
		return err
	}
	for id, a := range s.brokers {
		if a == addr {
			return &AdvertisedUnreachableError{NodeID: id, Addr: addr, Listener: s.resp.GetListener(), Err: err, Seed: slices.Contains(m.c.seeds, addr)}
		}
	}
	return err
}
