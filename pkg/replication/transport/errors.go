package transport

import "errors"

// Errors returned by the transport. Raft treats every RPC error the same
// way (it backs off and retries), so these matter to tests and to logs.
var (
	// ErrClosed: the Mux or the group's Transport is closed, or closed
	// while the call was pending. A retry does not help.
	ErrClosed = errors.New("transport: closed")

	// ErrUnknownGroup: the peer has no raft group of that name registered
	// (or its raft is not started yet, or shutting down: a heartbeat it
	// cannot answer), or it was unregistered while the call waited. The error's message is
	// the peer's. A retry helps once the peer creates the group.
	ErrUnknownGroup = errors.New("transport: unknown raft group")

	// ErrUnreachable: the peer cannot be reached: a dial failed, a
	// connection to it broke, or a call timed out while the peer is
	// reported unreachable (reach.go). The Mux logs one line when a peer
	// becomes unreachable and one when it answers again, so callers may
	// log these quietly. A retry helps once the peer is back.
	ErrUnreachable = errors.New("transport: peer unreachable")

	// ErrBlocked: the peer is blocked with Mux.Block (fault injection). A
	// retry helps after Unblock.
	ErrBlocked = errors.New("transport: peer blocked")

	// ErrFrameTooLarge: a frame, or the memory decoding it would take, is
	// over Options.MaxFrameBytes. A retry does not help; a received one
	// closes the connection.
	ErrFrameTooLarge = errors.New("transport: frame too large")

	// ErrTimeout: no response within the RPC's timeout, or the peer's raft
	// did not take the request in time. A retry may help.
	ErrTimeout = errors.New("transport: rpc timed out")

	// ErrCorruptFrame: a received frame fails its CRC-32C: its bytes
	// changed on the way. The connection is closed; its calls fail, and a
	// retry on a new connection helps.
	ErrCorruptFrame = errors.New("transport: corrupt frame")

	// errMalformed: a peer sent bytes that are not the format. The
	// connection is closed.
	errMalformed = errors.New("transport: malformed frame")
)

// remoteError is an error the peer reported: its message is the peer's,
// and it unwraps to the sentinel (ErrUnknownGroup) when there is one.
type remoteError struct {
	sentinel error
	msg      string
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }
