package transport

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
)

// Wire format. Every constant in this file is part of the format: changing
// one breaks brokers of different versions talking to each other, so bump
// helloVersion instead.
//
// A connection starts with the handshake (handshake.go: the hello, which
// names the dialer by its listen address, and a challenge and proof of the
// cluster secret both ways). A raft connection (hello purpose 1) then
// carries frames both ways. The dialer sends requests and the acceptor
// sends responses; many requests are in flight on one connection at once
// and responses come back in any order, matched by request id. All integers
// are big-endian.
//
//	offset  size  field
//	0       4     length u32: bytes after this field (1 .. MaxFrameBytes)
//	4       1     kind u8: 1 request, 2 response, 3 response "no such group"
//	5       8     request id u64, chosen by the requester, unique per connection
//	13      1     rpc type u8: 0 appendEntries, 1 requestVote, 2 installSnapshot,
//	              3 timeoutNow, 4 requestPreVote (raft's own numbering),
//	              5 heartbeats: a round of many groups' heartbeats, with an
//	              empty group name and the payload drawn in beats_frame.go
//	14      2     group length u16
//	16      g     group name bytes (an opaque string)
//	                      -- responses (kinds 2 and 3) only --
//	16+g    2     error length u16 (0 = success)
//	18+g    e     error message bytes
//	                      -- all kinds --
//	...     rest  payload: one msgpack value, the raft request or response
//	              struct (absent in an error response), except for rpc type
//	              5 (beats_frame.go); an installSnapshot
//	              request follows it with exactly InstallSnapshotRequest.Size
//	              bytes of snapshot data, carried inline.
//	end-4   4     crc u32: CRC-32C (Castagnoli) of every byte after the
//	              length field and before this one
//
// A frame whose CRC does not match is refused and its connection closed:
// the bytes could be anything, its length included. Raft sees the
// connection's calls fail and retries them on a new one. (Version 1 had
// no CRC; TCP's own checksum misses some corruptions that offloading NICs,
// middleboxes or memory introduce.)
//
// Every length is checked against what is left of the frame, and the frame
// length against MaxFrameBytes, before anything is allocated. The msgpack
// value is walked (scanMsgpack) before it is decoded, so its own lengths are
// checked too and the memory decoding it takes is bounded.
const (
	kindRequest   = 1
	kindResponse  = 2
	kindNoGroup   = 3 // a response: the group is not registered on the responder
	frameLenSize  = 4
	headerSize    = 1 + 8 + 1 + 2 // kind, id, rpc type, group length
	crcSize       = 4
	idOffset      = frameLenSize + 1
	maxGroupLen   = 1<<16 - 1
	maxErrorLen   = 1<<16 - 1
	minFrameBytes = headerSize + crcSize
)

// rpcType names a raft RPC on the wire.
type rpcType uint8

const (
	rpcAppendEntries   rpcType = 0
	rpcRequestVote     rpcType = 1
	rpcInstallSnapshot rpcType = 2
	rpcTimeoutNow      rpcType = 3
	rpcRequestPreVote  rpcType = 4
	rpcHeartbeats      rpcType = 5 // Strata's own: a heartbeat round (beats.go)
	rpcTypeCount               = 6
)

func (r rpcType) String() string {
	switch r {
	case rpcAppendEntries:
		return "appendEntries"
	case rpcRequestVote:
		return "requestVote"
	case rpcInstallSnapshot:
		return "installSnapshot"
	case rpcTimeoutNow:
		return "timeoutNow"
	case rpcRequestPreVote:
		return "requestPreVote"
	case rpcHeartbeats:
		return "heartbeats"
	}
	return fmt.Sprintf("rpc(%d)", uint8(r))
}

// frame is one decoded frame. payload aliases the buffer it was read into.
type frame struct {
	kind    byte
	id      uint64
	rpc     rpcType
	group   string
	err     string // responses only
	payload []byte
}

// mpHandle encodes and decodes every payload. A configured handle is safe
// for concurrent use.
var mpHandle = &codec.MsgpackHandle{}

// appendFrame appends f, length prefix included, to dst. It fails with
// ErrFrameTooLarge when the frame would exceed max bytes after the prefix.
func appendFrame(dst []byte, f *frame, max int) ([]byte, error) {
	if len(f.group) > maxGroupLen {
		return dst, fmt.Errorf("group name of %d bytes: %w", len(f.group), ErrFrameTooLarge)
	}
	errMsg := f.err
	if len(errMsg) > maxErrorLen {
		errMsg = errMsg[:maxErrorLen]
	}
	n := headerSize + len(f.group) + len(f.payload) + crcSize
	if f.kind != kindRequest {
		n += 2 + len(errMsg)
	}
	if n > max {
		return dst, fmt.Errorf("%s frame of %d bytes, limit %d: %w", f.rpc, n, max, ErrFrameTooLarge)
	}
	start := len(dst)
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	dst = append(dst, f.kind)
	dst = binary.BigEndian.AppendUint64(dst, f.id)
	dst = append(dst, byte(f.rpc))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(f.group)))
	dst = append(dst, f.group...)
	if f.kind != kindRequest {
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(errMsg)))
		dst = append(dst, errMsg...)
	}
	dst = append(dst, f.payload...)
	dst = append(dst, 0, 0, 0, 0)
	sealFrame(dst[start:])
	return dst, nil
}

// castagnoli is the CRC-32C table, as record batches use.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// sealFrame writes the CRC of the encoded frame b (length prefix
// included), after its other bytes are final.
func sealFrame(b []byte) {
	end := len(b) - crcSize
	binary.BigEndian.PutUint32(b[end:], crc32.Checksum(b[frameLenSize:end], castagnoli))
}

// readFrame reads one frame from r. The body buffer is allocated only after
// its length has been checked against max.
func readFrame(r *bufio.Reader, max int) (*frame, error) {
	var lb [frameLenSize]byte
	if _, err := io.ReadFull(r, lb[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(lb[:])
	if int64(n) > int64(max) {
		return nil, fmt.Errorf("frame of %d bytes, limit %d: %w", n, max, ErrFrameTooLarge)
	}
	if n < minFrameBytes {
		return nil, fmt.Errorf("%w: frame of %d bytes is shorter than a header", errMalformed, n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	end := len(body) - crcSize
	if got, want := crc32.Checksum(body[:end], castagnoli), binary.BigEndian.Uint32(body[end:]); got != want {
		return nil, fmt.Errorf("%w: frame of %d bytes fails its CRC (computed %08x, carried %08x)", ErrCorruptFrame, n, got, want)
	}
	return parseFrame(body[:end])
}

// parseFrame decodes a frame body (everything after the length prefix,
// before the CRC).
// The returned frame's payload aliases body.
func parseFrame(body []byte) (*frame, error) {
	if len(body) < headerSize {
		return nil, fmt.Errorf("%w: frame of %d bytes is shorter than a header", errMalformed, len(body))
	}
	f := &frame{
		kind: body[0],
		id:   binary.BigEndian.Uint64(body[1:9]),
		rpc:  rpcType(body[9]),
	}
	if f.kind < kindRequest || f.kind > kindNoGroup {
		return nil, fmt.Errorf("%w: unknown frame kind %d", errMalformed, f.kind)
	}
	if f.rpc >= rpcTypeCount {
		return nil, fmt.Errorf("%w: unknown rpc type %d", errMalformed, f.rpc)
	}
	rest := body[headerSize:]
	gl := int(binary.BigEndian.Uint16(body[10:12]))
	if gl > len(rest) {
		return nil, fmt.Errorf("%w: group length %d past the end of the frame", errMalformed, gl)
	}
	f.group, rest = string(rest[:gl]), rest[gl:]
	if f.kind != kindRequest {
		if len(rest) < 2 {
			return nil, fmt.Errorf("%w: response without an error length", errMalformed)
		}
		el := int(binary.BigEndian.Uint16(rest))
		rest = rest[2:]
		if el > len(rest) {
			return nil, fmt.Errorf("%w: error length %d past the end of the frame", errMalformed, el)
		}
		f.err, rest = string(rest[:el]), rest[el:]
	}
	f.payload = rest
	return f, nil
}

// encodePayload appends the msgpack encoding of v to dst.
func encodePayload(dst []byte, v any) ([]byte, error) {
	if err := codec.NewEncoderBytes(&dst, mpHandle).Encode(v); err != nil {
		return dst, fmt.Errorf("encode %T: %w", v, err)
	}
	return dst, nil
}

// newRequest returns a new, empty raft request struct for typ.
func newRequest(typ rpcType) any {
	switch typ {
	case rpcAppendEntries:
		return new(raft.AppendEntriesRequest)
	case rpcRequestVote:
		return new(raft.RequestVoteRequest)
	case rpcInstallSnapshot:
		return new(raft.InstallSnapshotRequest)
	case rpcTimeoutNow:
		return new(raft.TimeoutNowRequest)
	case rpcRequestPreVote:
		return new(raft.RequestPreVoteRequest)
	}
	return nil
}

// decodeRequest decodes a request payload. For installSnapshot it also
// returns the snapshot data that follows the msgpack value (aliasing
// payload). max bounds the memory decoding may take (see scanMsgpack).
func decodeRequest(typ rpcType, payload []byte, max int) (req any, snapshot []byte, err error) {
	req = newRequest(typ)
	if req == nil {
		return nil, nil, fmt.Errorf("%w: unknown rpc type %d", errMalformed, typ)
	}
	n, err := decodeValue(payload, req, max)
	if err != nil {
		return nil, nil, err
	}
	rest := payload[n:]
	if typ != rpcInstallSnapshot {
		if len(rest) != 0 {
			return nil, nil, fmt.Errorf("%w: %d bytes after the %s request", errMalformed, len(rest), typ)
		}
		return req, nil, nil
	}
	size := req.(*raft.InstallSnapshotRequest).Size
	if size != int64(len(rest)) {
		return nil, nil, fmt.Errorf("%w: snapshot of %d bytes, frame carries %d", errMalformed, size, len(rest))
	}
	return req, rest, nil
}

// decodeResponse decodes a response payload into resp.
func decodeResponse(payload []byte, resp any, max int) error {
	n, err := decodeValue(payload, resp, max)
	if err != nil {
		return err
	}
	if n != len(payload) {
		return fmt.Errorf("%w: %d bytes after the response", errMalformed, len(payload)-n)
	}
	return nil
}

// decodeValue decodes the msgpack value at the start of b into v and returns
// its length. It walks the value first, so a malformed or oversized value
// is refused before the decoder allocates for it.
func decodeValue(b []byte, v any, max int) (int, error) {
	n, cost, err := scanMsgpack(b)
	if err != nil {
		return 0, err
	}
	if cost > int64(max) {
		return 0, fmt.Errorf("decoding needs ~%d bytes, limit %d: %w", cost, max, ErrFrameTooLarge)
	}
	if err := codec.NewDecoderBytes(b[:n], mpHandle).Decode(v); err != nil {
		return 0, fmt.Errorf("%w: decode %T: %v", errMalformed, v, err)
	}
	return n, nil
}
