package transport

import (
	"encoding/binary"
	"fmt"
)

// Costs charged by scanMsgpack, in bytes of memory the msgpack decoder may
// allocate when it decodes into raft's request and response types. They
// over-estimate: a container may become a struct (a raft.Log is 96 bytes,
// its pointer 8 more) and each element a slot in a slice of pointers; a
// string or byte string is copied. The decoder itself and the top-level
// struct cost a few KiB on top, charged once as scanBaseCost.
const (
	scanBaseCost      = 8 << 10
	scanContainerCost = 128
	scanElementCost   = 16
	scanBytesCost     = 16 // per string, on top of its length
	scanMaxDepth      = 32 // raft's structs nest 3 deep
)

// scanMsgpack walks the single msgpack value at the start of b without
// decoding it or allocating. It returns the value's length in bytes and an
// upper bound on the memory decoding it takes. It fails if the value is
// truncated, uses the reserved byte 0xc1, nests deeper than scanMaxDepth, or
// declares a length past the end of b.
//
// Why walk first: the decoder trusts declared lengths (it provisions up to
// its own caps) and decodes one-byte nils and empty maps into 8-byte
// pointers and 96-byte structs, so a small frame from a hostile peer could
// cost a hundred times its size. The walk bounds that before any of it
// happens, and it also finds where the value ends, which is where an
// installSnapshot request's inline data begins.
func scanMsgpack(b []byte) (n int, cost int64, err error) {
	cost = scanBaseCost
	var stack [scanMaxDepth + 1]uint64 // values still to read at each depth
	depth := 0
	stack[0] = 1
	p := 0
	for {
		for stack[depth] == 0 {
			if depth == 0 {
				return p, cost, nil
			}
			depth--
		}
		stack[depth]--
		if p >= len(b) {
			return 0, 0, fmt.Errorf("%w: msgpack value truncated at byte %d", errMalformed, p)
		}
		c := b[p]
		p++
		var skip uint64  // bytes of data after the header
		var elems uint64 // values contained, for arrays and maps
		var container bool
		var hdr int // length-field size
		switch {
		case c <= 0x7f || c >= 0xe0: // fixint
		case c <= 0x8f: // fixmap
			container, elems = true, 2*uint64(c&0x0f)
		case c <= 0x9f: // fixarray
			container, elems = true, uint64(c&0x0f)
		case c <= 0xbf: // fixstr
			skip = uint64(c & 0x1f)
			cost += int64(skip) + scanBytesCost
		default:
			switch c {
			case 0xc0, 0xc2, 0xc3: // nil, false, true
			case 0xc1:
				return 0, 0, fmt.Errorf("%w: reserved msgpack byte 0xc1 at %d", errMalformed, p-1)
			case 0xc4, 0xd9: // bin8, str8
				hdr = 1
			case 0xc5, 0xda: // bin16, str16
				hdr = 2
			case 0xc6, 0xdb: // bin32, str32
				hdr = 4
			case 0xc7: // ext8: length, type, data
				hdr = 1
			case 0xc8:
				hdr = 2
			case 0xc9:
				hdr = 4
			case 0xca, 0xce, 0xd2: // float32, uint32, int32
				skip = 4
			case 0xcb, 0xcf, 0xd3: // float64, uint64, int64
				skip = 8
			case 0xcc, 0xd0:
				skip = 1
			case 0xcd, 0xd1:
				skip = 2
			case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16 plus the type byte
				skip = 1 + 1<<(c-0xd4)
				cost += scanBytesCost + int64(skip)
			case 0xdc: // array16
				container, hdr = true, 2
			case 0xdd: // array32
				container, hdr = true, 4
			case 0xde: // map16
				container, hdr = true, 2
			case 0xdf: // map32
				container, hdr = true, 4
			}
			if hdr > 0 {
				if len(b)-p < hdr {
					return 0, 0, fmt.Errorf("%w: msgpack length truncated at byte %d", errMalformed, p)
				}
				var l uint64
				switch hdr {
				case 1:
					l = uint64(b[p])
				case 2:
					l = uint64(binary.BigEndian.Uint16(b[p:]))
				case 4:
					l = uint64(binary.BigEndian.Uint32(b[p:]))
				}
				p += hdr
				switch {
				case c == 0xde || c == 0xdf:
					elems = 2 * l
				case container:
					elems = l
				case c >= 0xc7 && c <= 0xc9: // ext: type byte, then data
					skip = 1 + l
					cost += int64(skip) + scanBytesCost
				default:
					skip = l
					cost += int64(l) + scanBytesCost
				}
			}
		}
		if skip > uint64(len(b)-p) {
			return 0, 0, fmt.Errorf("%w: msgpack value of %d bytes past the end at byte %d", errMalformed, skip, p)
		}
		p += int(skip)
		if !container {
			continue
		}
		// Every element takes at least one byte, so a count past the end
		// is a lie; refusing it here also keeps the cost below in range.
		if elems > uint64(len(b)-p) {
			return 0, 0, fmt.Errorf("%w: msgpack container of %d values past the end at byte %d", errMalformed, elems, p)
		}
		cost += scanContainerCost + scanElementCost*int64(elems)
		if elems == 0 {
			continue
		}
		if depth == scanMaxDepth {
			return 0, 0, fmt.Errorf("%w: msgpack nested deeper than %d", errMalformed, scanMaxDepth)
		}
		depth++
		stack[depth] = elems
	}
}
