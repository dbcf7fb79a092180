package transport

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func sampleRequests() map[rpcType]any {
	hdr := raft.RPCHeader{ProtocolVersion: 3, ID: []byte("1"), Addr: []byte("127.0.0.1:1")}
	return map[rpcType]any{
		rpcAppendEntries: &raft.AppendEntriesRequest{
			RPCHeader: hdr, Term: 7, Leader: []byte("127.0.0.1:1"), PrevLogEntry: 41, PrevLogTerm: 6,
			Entries: []*raft.Log{
				{Index: 42, Term: 7, Type: raft.LogCommand, Data: []byte("hello"), AppendedAt: time.Unix(1700000000, 5).UTC()},
				{Index: 43, Term: 7, Type: raft.LogNoop, Extensions: []byte{1, 2}},
			},
			LeaderCommitIndex: 40,
		},
		rpcRequestVote:     &raft.RequestVoteRequest{RPCHeader: hdr, Term: 8, LastLogIndex: 43, LastLogTerm: 7, LeadershipTransfer: true},
		rpcInstallSnapshot: &raft.InstallSnapshotRequest{RPCHeader: hdr, SnapshotVersion: 1, Term: 9, LastLogIndex: 50, LastLogTerm: 9, Configuration: []byte("cfg"), ConfigurationIndex: 3, Size: 5},
		rpcTimeoutNow:      &raft.TimeoutNowRequest{RPCHeader: hdr},
		rpcRequestPreVote:  &raft.RequestPreVoteRequest{RPCHeader: hdr, Term: 10, LastLogIndex: 43, LastLogTerm: 7},
	}
}

func sampleResponses() map[rpcType]any {
	hdr := raft.RPCHeader{ProtocolVersion: 3, ID: []byte("2"), Addr: []byte("127.0.0.1:2")}
	return map[rpcType]any{
		rpcAppendEntries:   &raft.AppendEntriesResponse{RPCHeader: hdr, Term: 7, LastLog: 43, Success: true},
		rpcRequestVote:     &raft.RequestVoteResponse{RPCHeader: hdr, Term: 8, Granted: true},
		rpcInstallSnapshot: &raft.InstallSnapshotResponse{RPCHeader: hdr, Term: 9, Success: true},
		rpcTimeoutNow:      &raft.TimeoutNowResponse{RPCHeader: hdr},
		rpcRequestPreVote:  &raft.RequestPreVoteResponse{RPCHeader: hdr, Term: 10, Granted: true},
	}
}

func newResponse(typ rpcType) any {
	return reflect.New(reflect.TypeOf(sampleResponses()[typ]).Elem()).Interface()
}

// readOne reads a frame from encoded bytes.
func readOne(t testing.TB, b []byte, max int) (*frame, error) {
	t.Helper()
	return readFrame(bufio.NewReader(bytes.NewReader(b)), max)
}

func TestFrameRoundTrip(t *testing.T) {
	const max = 1 << 20
	for typ, req := range sampleRequests() {
		t.Run(typ.String(), func(t *testing.T) {
			payload, err := encodePayload(nil, req)
			if err != nil {
				t.Fatal(err)
			}
			var snap []byte
			if typ == rpcInstallSnapshot {
				snap = []byte("state")
				payload = append(payload, snap...)
			}
			b, err := appendFrame(nil, &frame{kind: kindRequest, id: 99, rpc: typ, group: "topic-a/3", payload: payload}, max)
			if err != nil {
				t.Fatal(err)
			}
			f, err := readOne(t, b, max)
			if err != nil {
				t.Fatal(err)
			}
			if f.kind != kindRequest || f.id != 99 || f.rpc != typ || f.group != "topic-a/3" || f.err != "" {
				t.Fatalf("header: %+v", f)
			}
			got, gotSnap, err := decodeRequest(f.rpc, f.payload, max)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, req) {
				t.Fatalf("request:\n got %#v\nwant %#v", got, req)
			}
			if !bytes.Equal(gotSnap, snap) {
				t.Fatalf("snapshot %q, want %q", gotSnap, snap)
			}

			resp := sampleResponses()[typ]
			payload, err = encodePayload(nil, resp)
			if err != nil {
				t.Fatal(err)
			}
			for _, kind := range []byte{kindResponse, kindNoGroup} {
				b, err = appendFrame(nil, &frame{kind: kind, id: 1<<64 - 1, rpc: typ, group: "g", err: "boom", payload: payload}, max)
				if err != nil {
					t.Fatal(err)
				}
				f, err = readOne(t, b, max)
				if err != nil {
					t.Fatal(err)
				}
				if f.kind != kind || f.id != 1<<64-1 || f.rpc != typ || f.group != "g" || f.err != "boom" {
					t.Fatalf("header: %+v", f)
				}
				gotResp := newResponse(typ)
				if err := decodeResponse(f.payload, gotResp, max); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(gotResp, resp) {
					t.Fatalf("response:\n got %#v\nwant %#v", gotResp, resp)
				}
			}
		})
	}
}

func TestFrameRejects(t *testing.T) {
	const max = 1 << 10
	good, _ := appendFrame(nil, &frame{kind: kindRequest, id: 1, rpc: rpcTimeoutNow, group: "g"}, max)
	withLen := func(b []byte) []byte { // fix the length prefix and the CRC after editing the body
		binary.BigEndian.PutUint32(b, uint32(len(b)-4))
		if len(b) >= frameLenSize+crcSize {
			sealFrame(b)
		}
		return b
	}
	edit := func(f func(b []byte)) []byte {
		b := append([]byte{}, good...)
		f(b)
		return withLen(b)
	}
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"over max", binary.BigEndian.AppendUint32(nil, max+1), ErrFrameTooLarge},
		{"4 GiB claim", []byte{0xff, 0xff, 0xff, 0xff}, ErrFrameTooLarge},
		{"shorter than header", withLen([]byte{0, 0, 0, 0, kindRequest}), errMalformed},
		{"bad kind", edit(func(b []byte) { b[4] = 9 }), errMalformed},
		{"bad rpc", edit(func(b []byte) { b[13] = 77 }), errMalformed},
		{"group past end", edit(func(b []byte) { b[15] = 200 }), errMalformed},
		{"response without error length", edit(func(b []byte) { b[4] = kindResponse }), errMalformed},
		{"a flipped bit fails the CRC", func() []byte { b := append([]byte{}, good...); b[16] ^= 0x10; return b }(), ErrCorruptFrame},
		{"a flipped bit in the CRC", func() []byte { b := append([]byte{}, good...); b[len(b)-1] ^= 1; return b }(), ErrCorruptFrame},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readOne(t, tc.b, max)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := readOne(t, good[:len(good)-1], max); err == nil {
		t.Fatal("truncated frame accepted")
	}
	if _, err := appendFrame(nil, &frame{kind: kindRequest, payload: make([]byte, max)}, max); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("encoding an oversized frame: %v", err)
	}
}

func TestDecodeRejects(t *testing.T) {
	const max = 1 << 20
	ok, _ := encodePayload(nil, sampleRequests()[rpcTimeoutNow])
	snapReq, _ := encodePayload(nil, sampleRequests()[rpcInstallSnapshot]) // Size: 5
	cases := []struct {
		name    string
		typ     rpcType
		payload []byte
		want    error
	}{
		{"trailing bytes", rpcTimeoutNow, append(append([]byte{}, ok...), 0), errMalformed},
		{"truncated", rpcTimeoutNow, ok[:len(ok)-1], errMalformed},
		{"empty", rpcTimeoutNow, nil, errMalformed},
		{"reserved byte", rpcTimeoutNow, []byte{0xc1}, errMalformed},
		{"array count past end", rpcAppendEntries, []byte{0xdd, 0xff, 0xff, 0xff, 0xff}, errMalformed},
		{"bin length past end", rpcAppendEntries, []byte{0xc6, 0x7f, 0xff, 0xff, 0xff, 0}, errMalformed},
		{"nested too deep", rpcAppendEntries, bytes.Repeat([]byte{0x91}, scanMaxDepth+2), errMalformed},
		{"snapshot short", rpcInstallSnapshot, append(append([]byte{}, snapReq...), "abcd"...), errMalformed},
		{"snapshot long", rpcInstallSnapshot, append(append([]byte{}, snapReq...), "abcdef"...), errMalformed},
		{"wrong type", rpcAppendEntries, []byte{0xa1, 'x'}, errMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := decodeRequest(tc.typ, tc.payload, max); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	// Many empty maps: tiny on the wire, 100x that decoded. The walk
	// refuses it before the decoder starts.
	n := 1 << 16
	amp := append([]byte{0x81, 0xa7}, "Entries"...)
	amp = append(amp, 0xdd)
	amp = binary.BigEndian.AppendUint32(amp, uint32(n))
	amp = append(amp, bytes.Repeat([]byte{0x80}, n)...)
	if _, _, err := decodeRequest(rpcAppendEntries, amp, 1<<20); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("amplifying payload: err = %v, want ErrFrameTooLarge", err)
	}
	if _, _, err := decodeRequest(rpcAppendEntries, amp, 64<<20); err != nil {
		t.Fatalf("same payload under a large limit: %v", err)
	}
}

func TestHello(t *testing.T) {
	h := hello{purpose: purposeGRPC, addr: "10.0.0.1:9291"}
	h.nonce[0], h.nonce[31] = 7, 9
	b := appendHello(nil, h)
	got, err := readHello(bytes.NewReader(b))
	if err != nil || got != h {
		t.Fatalf("readHello = %+v, %v; want %+v", got, err, h)
	}
	bad := append([]byte{}, b...)
	bad[0] = 'X'
	if _, err := readHello(bytes.NewReader(bad)); !errors.Is(err, errMalformed) {
		t.Fatalf("bad magic: %v", err)
	}
	bad = append([]byte{}, b...)
	bad[4] = 2 // before the handshake
	if _, err := readHello(bytes.NewReader(bad)); !errors.Is(err, errMalformed) {
		t.Fatalf("bad version: %v", err)
	}
	bad = append([]byte{}, b...)
	bad[5] = 9
	if _, err := readHello(bytes.NewReader(bad)); !errors.Is(err, errMalformed) {
		t.Fatalf("bad purpose: %v", err)
	}
	if _, err := readHello(bytes.NewReader([]byte("SRFT\x03\x01\xff\xff"))); !errors.Is(err, errMalformed) {
		t.Fatalf("huge address: %v", err)
	}
}

// FuzzFrame: reading and decoding arbitrary bytes never panics, never
// allocates a frame buffer larger than the limit, and decoding a frame's
// payload never allocates more than the limit either.
func FuzzFrame(f *testing.F) {
	const max = 64 << 10
	for typ, req := range sampleRequests() {
		payload, _ := encodePayload(nil, req)
		if typ == rpcInstallSnapshot {
			payload = append(payload, "state"...)
		}
		b, _ := appendFrame(nil, &frame{kind: kindRequest, id: 3, rpc: typ, group: "g", payload: payload}, max)
		f.Add(b)
		f.Add(b[frameLenSize:])
		resp, _ := encodePayload(nil, sampleResponses()[typ])
		b, _ = appendFrame(nil, &frame{kind: kindResponse, id: 3, rpc: typ, group: "g", payload: resp}, max)
		f.Add(b)
		f.Add(b[frameLenSize:])
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		// As a stream: the length prefix is checked before the body is
		// allocated.
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, _ = readOne(t, data, max)
		runtime.ReadMemStats(&after)
		if got := after.TotalAlloc - before.TotalAlloc; got > max+connBufferSize {
			t.Fatalf("reading a frame allocated %d bytes, limit %d", got, max)
		}
		// As a body (no prefix, so mutations reach the decoders): parsing
		// and decoding the payload allocate at most max.
		if len(data) > max {
			return
		}
		runtime.ReadMemStats(&before)
		fr, err := parseFrame(data)
		switch {
		case err != nil:
		case fr.rpc == rpcHeartbeats:
			fuzzBeats(fr.payload, max)
		default:
			if fr.kind == kindRequest {
				_, _, _ = decodeRequest(fr.rpc, fr.payload, max)
			} else {
				_ = decodeResponse(fr.payload, newResponse(fr.rpc), max)
			}
		}
		runtime.ReadMemStats(&after)
		if got := after.TotalAlloc - before.TotalAlloc; got > max {
			t.Fatalf("decoding a frame of %d bytes allocated %d bytes, limit %d", len(data), got, max)
		}
	})
}
