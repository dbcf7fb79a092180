// Package transport carries the Raft traffic of all of a broker's raft
// groups (one per partition replica, plus the metadata group) over one TCP
// listener and a small pool of connections per peer broker. Each group gets
// its own raft.Transport from the broker's Mux.
//
// Why not hashicorp/raft's NetworkTransport: its RPC headers name no group
// and its heartbeat fast path calls a single handler, so groups sharing one
// get each other's heartbeats (raft issues 290 and 674); and one per group
// costs a listener plus 512 KiB of bufio buffers per pooled connection per
// group, against Strata's budget of 256 KiB per partition replica in all.
//
// What it owns: the listener; the connections, dialled lazily,
// Options.ConnsPerPeer per peer, shared round-robin by every group, with a
// 64 KiB read and a 64 KiB write buffer each; the wire format (frame.go,
// drawn byte by byte); and every goroutine it starts: the accept loop, one
// reader per connection, and short-lived ones that hand a received request
// to its group's raft and send the answer, or hand completed pipelined
// AppendEntries to raft in order. A group at rest costs a small struct and
// two channels: no goroutine, no buffer, no timer.
//
// What it does not own: raft itself, peer discovery (raft's configuration
// names peers by their Mux address), the cluster secret and certificates
// (Options.Security: the caller's).
//
// Security: every connection, both ways, starts with a handshake
// (handshake.go): mutual TLS when Options.Security has TLS configs, then a
// challenge-response proving the cluster secret with HMAC-SHA256; a peer
// that fails is closed before a frame is read, counted (AuthFailures) and
// logged once per host per minute. The same listener also takes gRPC
// connections for the brokers' internal service (hello purpose 2): they
// are handed to Listener after the handshake, and DialContext dials them.
//
// Usage:
//
//	mux, err := transport.Listen("0.0.0.0:9292", transport.Options{Logger: log})
//	if err != nil { ... }
//	defer mux.Close()
//
//	tr, err := mux.Transport("orders/3") // one per raft group on this broker
//	if err != nil { ... }
//	conf := raft.DefaultConfig()
//	conf.LocalID = "2"
//	r, err := raft.NewRaft(conf, fsm, logs, stable, snaps, tr)
//	if err != nil { tr.Close(); ... }
//	...
//	r.Shutdown().Error() // raft closes tr, which unregisters the group
//
// Every broker's raft configuration names a server by the address its
// Mux listens on, mux.Addr(); EncodePeer and DecodePeer carry it as is.
//
// Behaviour worth knowing:
//   - A request for a group the peer has not registered (not created yet, or
//     already closed) fails with ErrUnknownGroup carrying the peer's
//     message; raft backs off and retries. So does one for a group
//     registered whose raft has not started within half the request's
//     timeout (the broker still opening the replica; server.go: hand).
//   - Heartbeat rounds: a group's heartbeat to a peer is not sent alone.
//     It waits for that peer's next round, one frame carrying every
//     group's heartbeat to the peer, sent at most every
//     Options.HeartbeatInterval, and returns the follower's own answer
//     (beats.go: the format, and why raft's election timeout and lease
//     still hold). The peer runs them through each group's heartbeat
//     handler in turn and answers them in one frame.
//   - Liveness: every frame read from a peer stamps it heard (Mux.Heard,
//     Mux.Alive),
//     and peers named with Mux.Watch get an empty round every
//     HeartbeatInterval in which no round went, so a live, connected peer
//     is heard at least that often whatever its groups do (liveness.go).
//     Liveness times are monotonic: a wall-clock step changes nothing.
//   - Reachability: the first failed dial, broken connection, or
//     3 × HeartbeatInterval of a watched peer's silence logs one warning
//     ("peer unreachable"), the next frame from it one info line; calls
//     to it that fail meanwhile wrap ErrUnreachable, so that raft's logger
//     can write them at debug (reach.go).
//   - RequestVote asks a peer that has not opened the group yet again, for
//     up to 8 s, instead of failing the vote at once.
//   - A lone heartbeat frame goes to the group's heartbeat handler, on its
//     own goroutine; other requests go to the group's Consumer in arrival
//     order, one at a time. A request raft does not take within its timeout
//     (RPCTimeout, SnapshotTimeout for InstallSnapshot) is answered with an
//     error, so a stuck group delays nobody else on the connection.
//   - AppendEntriesPipeline keeps Options.PipelineDepth AppendEntries in
//     flight on one connection; futures come out of Consumer in send order.
//   - InstallSnapshot carries the snapshot inline in one frame, bounded by
//     MaxFrameBytes: Strata's snapshots are offsets and state, not data.
//   - Block, Unblock and UnblockAll cut a peer off both ways, for tests.
//
// Caller's duties:
//  1. Call Transport.StopHeartbeats just before raft.Shutdown (raft waits
//     for its heartbeat goroutines, which may be waiting for a round).
//     Shut down every raft (or close every Transport) before closing the
//     Mux. Mux.Close closes what is left, but a raft still running sees its
//     RPCs fail with ErrClosed.
//  2. Group names are opaque strings, at most 65535 bytes, unique per
//     broker, and the same on every broker of the group: a request is
//     routed by name alone.
//  3. Give a Transport to exactly one raft.Raft, and register a group's
//     name again only after its previous Transport is closed.
//  4. Listen on an address peers can dial, and use exactly mux.Addr() as
//     this broker's raft.ServerAddress: a connection's hello names the
//     dialer by that address, which is what Block matches. With TLS,
//     the broker's certificate must name that address's host.
//  5. Keep snapshots and AppendEntries batches under MaxFrameBytes on every
//     broker alike; a frame over a receiver's limit closes the connection.
//  6. Give every broker of a cluster the same Options.Security secret
//     and CA.
package transport
