package transport

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"github.com/hashicorp/raft"
)

// Heartbeat rounds on the wire. A round is one request frame of rpc type
// 5 (rpcHeartbeats) with an empty group name, carrying the heartbeats of
// every group this broker leads that are due to one peer; its response
// frame carries one answer per heartbeat, in the same order. Payloads are
// plain binary, not msgpack: a round is the hot path of an idle broker.
// All integers are big-endian; "str" is a u16 length and that many bytes.
//
// Request payload:
//
//	count u32
//	count times:
//	  group str | term u64 | protocol version u8 | id str | addr str | leader str
//
// That is raft's heartbeat, AppendEntriesRequest with every other field
// zero (isHeartbeat): its RPCHeader (ProtocolVersion, ID, Addr), Term and
// the legacy Leader field.
//
// Response payload:
//
//	count u32 (= the request's)
//	count times:
//	  status u8: 0 answered, 1 no such group, 2 error
//	  status 0: term u64 | last log u64 | flags u8 (bit 0 success,
//	            bit 1 no retry backoff) | protocol version u8 | id str | addr str
//	  status 1, 2: message str
//
// Counts are checked against the bytes left (an entry is at least
// minBeatBytes or minAnswerBytes) before anything is allocated.
const (
	beatAnswered = 0
	beatNoGroup  = 1
	beatError    = 2

	// minBeatBytes and minAnswerBytes are the smallest encoded request
	// and answer entries.
	minBeatBytes   = 2 + 8 + 1 + 2 + 2 + 2
	minAnswerBytes = 1 + 2
)

// beatReq is one heartbeat of a round, as carried on the wire.
type beatReq struct {
	group string
	req   raft.AppendEntriesRequest
}

// beatAnswer is one heartbeat's answer: a response, or an error
// (noGroup: the peer has no such group).
type beatAnswer struct {
	resp    raft.AppendEntriesResponse
	noGroup bool
	err     string
}

func appendStr(dst []byte, b []byte) []byte {
	if len(b) > maxGroupLen {
		b = b[:maxGroupLen]
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(b)))
	return append(dst, b...)
}

// appendBeats appends the request payload of a round.
func appendBeats(dst []byte, beats []*beat) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(beats)))
	for _, b := range beats {
		b := &b.beatReq
		dst = appendStr(dst, []byte(b.group))
		dst = binary.BigEndian.AppendUint64(dst, b.req.Term)
		dst = append(dst, byte(b.req.RPCHeader.ProtocolVersion))
		dst = appendStr(dst, b.req.RPCHeader.ID)
		dst = appendStr(dst, b.req.RPCHeader.Addr)
		dst = appendStr(dst, b.req.Leader)
	}
	return dst
}

// appendBeatAnswers appends the response payload of a round.
func appendBeatAnswers(dst []byte, answers []beatAnswer) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(answers)))
	for i := range answers {
		a := &answers[i]
		switch {
		case a.noGroup:
			dst = append(dst, beatNoGroup)
			dst = appendStr(dst, []byte(a.err))
		case a.err != "":
			dst = append(dst, beatError)
			dst = appendStr(dst, []byte(a.err))
		default:
			dst = append(dst, beatAnswered)
			dst = binary.BigEndian.AppendUint64(dst, a.resp.Term)
			dst = binary.BigEndian.AppendUint64(dst, a.resp.LastLog)
			var flags byte
			if a.resp.Success {
				flags |= 1
			}
			if a.resp.NoRetryBackoff {
				flags |= 2
			}
			dst = append(dst, flags, byte(a.resp.RPCHeader.ProtocolVersion))
			dst = appendStr(dst, a.resp.RPCHeader.ID)
			dst = appendStr(dst, a.resp.RPCHeader.Addr)
		}
	}
	return dst
}

// beatReader walks a payload; the first error sticks.
type beatReader struct {
	b   []byte
	err error
}

func (r *beatReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: heartbeat round: %s past the end of the payload", errMalformed, what)
	}
}

func (r *beatReader) u8(what string) byte {
	if r.err != nil || len(r.b) < 1 {
		r.fail(what)
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *beatReader) u64(what string) uint64 {
	if r.err != nil || len(r.b) < 8 {
		r.fail(what)
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

// str returns the next string's bytes, aliasing the payload.
func (r *beatReader) str(what string) []byte {
	if r.err != nil || len(r.b) < 2 {
		r.fail(what)
		return nil
	}
	n := int(binary.BigEndian.Uint16(r.b))
	if len(r.b)-2 < n {
		r.fail(what)
		return nil
	}
	v := r.b[2 : 2+n : 2+n]
	r.b = r.b[2+n:]
	return v
}

// count reads an entry count and checks it against the bytes left, at
// least min per entry.
func (r *beatReader) count(min int) int {
	if len(r.b) < 4 {
		r.fail("count")
		return 0
	}
	n := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	if uint64(n) > uint64(len(r.b)/min) {
		r.err = fmt.Errorf("%w: heartbeat round of %d entries in %d bytes", errMalformed, n, len(r.b))
		return 0
	}
	return int(n)
}

func (r *beatReader) end() error {
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d bytes after the heartbeat round", errMalformed, len(r.b))
	}
	return r.err
}

// decodeBeats decodes a round's request payload. The byte slices in the
// requests alias payload. max bounds the memory the decoded requests and
// their answers take (an entry of 17 bytes decodes to a few hundred).
func decodeBeats(payload []byte, max int) ([]beatReq, error) {
	r := beatReader{b: payload}
	n := r.count(minBeatBytes)
	if cost := uint64(n) * uint64(unsafe.Sizeof(beatReq{})+unsafe.Sizeof(beatAnswer{})); cost > uint64(max) {
		return nil, fmt.Errorf("heartbeat round of %d entries needs ~%d bytes, limit %d: %w", n, cost, max, ErrFrameTooLarge)
	}
	out := make([]beatReq, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		var b beatReq
		b.group = string(r.str("group"))
		b.req.Term = r.u64("term")
		b.req.RPCHeader.ProtocolVersion = raft.ProtocolVersion(r.u8("protocol version"))
		b.req.RPCHeader.ID = r.str("id")
		b.req.RPCHeader.Addr = r.str("addr")
		b.req.Leader = r.str("leader")
		out = append(out, b)
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return out, nil
}

// decodeBeatAnswers decodes a round's response payload, which must hold
// exactly want answers.
func decodeBeatAnswers(payload []byte, want int) ([]beatAnswer, error) {
	r := beatReader{b: payload}
	n := r.count(minAnswerBytes)
	if r.err == nil && n != want {
		return nil, fmt.Errorf("%w: heartbeat round answered %d of %d heartbeats", errMalformed, n, want)
	}
	out := make([]beatAnswer, n)
	for i := 0; i < n && r.err == nil; i++ {
		a := &out[i]
		switch st := r.u8("status"); st {
		case beatAnswered:
			a.resp.Term = r.u64("term")
			a.resp.LastLog = r.u64("last log")
			flags := r.u8("flags")
			a.resp.Success, a.resp.NoRetryBackoff = flags&1 != 0, flags&2 != 0
			a.resp.RPCHeader.ProtocolVersion = raft.ProtocolVersion(r.u8("protocol version"))
			a.resp.RPCHeader.ID = append([]byte(nil), r.str("id")...)
			a.resp.RPCHeader.Addr = append([]byte(nil), r.str("addr")...)
		case beatNoGroup, beatError:
			a.noGroup = st == beatNoGroup
			a.err = string(r.str("message"))
			if a.err == "" {
				a.err = "heartbeat refused"
			}
		default:
			if r.err == nil {
				r.err = fmt.Errorf("%w: heartbeat answer status %d", errMalformed, st)
			}
		}
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return out, nil
}
