package main

import (
	"fmt"
	"strconv"

	"github.com/stratalog/strata/pkg/client"
)

// recordFormat is a compiled --format string: literal text and %-verbs,
// rendered per record. kcat's verbs, and rpk's where they do not clash
// (rpk's %T is the topic's length; here it is kcat's timestamp):
//
//	%t topic      %p partition   %o offset       %T timestamp (Unix ms)
//	%k key        %s value       %K key length   %S value length
//	%h headers as k=v,k=v        %% a percent sign
//	rpk: %v value, %V value length, %d timestamp, %H number of headers
//	\n newline    \t tab         \r return       \\ backslash
//
// A null key or value prints as nothing, and its length as -1, as in kcat.
type recordFormat []formatPart

type formatPart struct {
	lit  []byte
	verb byte // 0 for a literal
}

const defaultFormat = `%v\n`

func parseFormat(s string) (recordFormat, error) {
	var out recordFormat
	var lit []byte
	flush := func() {
		if len(lit) > 0 {
			out = append(out, formatPart{lit: lit})
			lit = nil
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '%':
			if i+1 == len(s) {
				return nil, usageErrorf("--format %q: lone %% at the end (write %%%% for a percent sign)", s)
			}
			i++
			switch v := s[i]; v {
			case '%':
				lit = append(lit, '%')
			case 't', 'p', 'o', 'T', 'k', 's', 'K', 'S', 'h', // kcat's
				'v', 'V', 'd', 'H': // rpk's that do not clash
				flush()
				out = append(out, formatPart{verb: v})
			default:
				return nil, usageErrorf("--format %q: unknown verb %%%c (known: %%t %%p %%o %%T %%k %%s %%K %%S %%h as kcat, %%v %%V %%d %%H as rpk, %%%%)", s, v)
			}
		case '\\':
			if i+1 == len(s) {
				lit = append(lit, '\\')
				continue
			}
			i++
			switch e := s[i]; e {
			case 'n':
				lit = append(lit, '\n')
			case 't':
				lit = append(lit, '\t')
			case 'r':
				lit = append(lit, '\r')
			case '\\':
				lit = append(lit, '\\')
			default:
				lit = append(lit, '\\', e)
			}
		default:
			lit = append(lit, c)
		}
	}
	flush()
	return out, nil
}

// render appends r, formatted, to dst.
func (f recordFormat) render(dst []byte, r *client.Record) []byte {
	for _, p := range f {
		switch p.verb {
		case 0:
			dst = append(dst, p.lit...)
		case 't':
			dst = append(dst, r.Topic...)
		case 'p':
			dst = strconv.AppendInt(dst, int64(r.Partition), 10)
		case 'o':
			dst = strconv.AppendInt(dst, r.Offset, 10)
		case 'T', 'd':
			dst = strconv.AppendInt(dst, r.Timestamp.UnixMilli(), 10)
		case 'k':
			dst = append(dst, r.Key...)
		case 's', 'v':
			dst = append(dst, r.Value...)
		case 'K':
			dst = appendLen(dst, r.Key)
		case 'S', 'V':
			dst = appendLen(dst, r.Value)
		case 'H':
			dst = strconv.AppendInt(dst, int64(len(r.Headers)), 10)
		case 'h':
			for i, h := range r.Headers {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = fmt.Appendf(dst, "%s=%s", h.Key, h.Value)
			}
		}
	}
	return dst
}

func appendLen(dst, b []byte) []byte {
	if b == nil {
		return append(dst, "-1"...)
	}
	return strconv.AppendInt(dst, int64(len(b)), 10)
}
