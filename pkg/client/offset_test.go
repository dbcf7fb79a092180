package client

import (
	"strings"
	"testing"
	"time"
)

func TestParseOffset(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Offset
		err  string
	}{
		{in: "start", want: Earliest()},
		{in: "earliest", want: Earliest()},
		{in: "END", want: Latest()},
		{in: "newest", want: Latest()},
		{in: "0", want: AtOffset(0)},
		{in: "47", want: AtOffset(47)},
		{in: "-3", want: FromEnd(3)},
		{in: "@2026-01-02T15:04:05Z", want: AtTime(time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC))},
		{in: "@1700000000000", want: AtTime(time.UnixMilli(1700000000000))},
		{in: "", err: "not a number"},
		{in: "soon", err: "not a number"},
		{in: "@", err: "missing time"},
		{in: "@yesterday", err: "neither RFC 3339"},
		{in: "1.5", err: "not a number"},
	} {
		got, err := ParseOffset(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseOffset(%q): err %v, want one containing %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseOffset(%q): %v", c.in, err)
			continue
		}
		if got.kind != c.want.kind || got.n != c.want.n || !got.t.Equal(c.want.t) {
			t.Errorf("ParseOffset(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestOffsetString(t *testing.T) {
	for o, want := range map[Offset]string{
		Earliest():                "start",
		Latest():                  "end",
		AtOffset(5):               "5",
		FromEnd(3):                "-3",
		AtTime(time.UnixMilli(0)): "@1970-01-01T00:00:00Z",
	} {
		if got := o.String(); got != want {
			t.Errorf("%#v.String() = %q, want %q", o, got, want)
		}
	}
}
