package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

func TestReadLine(t *testing.T) {
	for _, c := range []struct {
		in   string
		max  int
		want string // lines joined by |, then the final error
	}{
		{"a\nb\n", 10, "a|b|EOF"},
		{"a\r\nb", 10, "a|b|EOF"}, // CRLF, and a last line without newline
		{"\n\n", 10, "||EOF"},     // empty lines are empty records
		{"", 10, "EOF"},
		{"abcd\n", 4, "abcd|EOF"},
		{"abcde\n", 4, "ERR"},
		{strings.Repeat("x", 200000) + "\nok\n", 1 << 20, fmt.Sprintf("%d|ok|EOF", 200000)}, // past bufio's buffer
	} {
		r := bufio.NewReaderSize(strings.NewReader(c.in), 16)
		if s := readEach(t, c.in, func() ([]byte, error) { return readLine(r, c.max) }); s != c.want {
			t.Errorf("readLine(%.20q, max %d): %s, want %s", c.in, c.max, s, c.want)
		}
	}
}

func TestSplitKey(t *testing.T) {
	for _, c := range []struct {
		line, sep  string
		key, value string
		nullKey    bool
	}{
		{"user1:login", ":", "user1", "login", false},
		{"a:b:c", ":", "a", "b:c", false}, // first separator only
		{":v", ":", "", "v", false},       // empty, not null, key
		{"k:", ":", "k", "", false},
		{"novalue", ":", "", "novalue", true}, // no separator: null key
		{"k=>v", "=>", "k", "v", false},       // multi-byte separator
		{"k\tv", "\t", "k", "v", false},
	} {
		k, v := splitKey([]byte(c.line), c.sep)
		if string(k) != c.key || string(v) != c.value || (k == nil) != c.nullKey {
			t.Errorf("splitKey(%q, %q) = %q (nil %v), %q", c.line, c.sep, k, k == nil, v)
		}
	}
}

func TestParseKeyValuesAndHeaders(t *testing.T) {
	kv, err := parseKeyValues([]string{"a=1", "b=x=y", "c="}, "--config")
	if err != nil || kv["a"] != "1" || kv["b"] != "x=y" || kv["c"] != "" || len(kv) != 3 {
		t.Errorf("parseKeyValues: %v, %v", kv, err)
	}
	for _, bad := range []string{"a", "=1"} {
		if _, err := parseKeyValues([]string{bad}, "--config"); err == nil || !strings.Contains(err.Error(), "--config") {
			t.Errorf("parseKeyValues(%q): %v", bad, err)
		}
	}
	hs, err := parseHeaders([]string{"trace=abc", "trace=def"})
	if err != nil || len(hs) != 2 || hs[1].Key != "trace" || string(hs[1].Value) != "def" {
		t.Errorf("parseHeaders: %v, %v", hs, err)
	}
	if _, err := parseHeaders([]string{"nokv"}); err == nil {
		t.Error("parseHeaders accepted a header without =")
	}
}

func TestReadDelimited(t *testing.T) {
	for _, c := range []struct {
		in, delim string
		max       int
		want      string // records joined by |, then the final error
	}{
		{"a\x00b\x00", "\x00", 10, "a|b|EOF"},
		{"a\x00b", "\x00", 10, "a|b|EOF"}, // the last record without its delimiter
		{"x\ny||z||", "||", 10, "x\ny|z|EOF"},
		{"a|b||c", "||", 10, "a|b|c|EOF"}, // half a delimiter is data
		{"||||", "||", 10, "||EOF"},       // empty records
		{"abcd||", "||", 4, "abcd|EOF"},
		{"abcde||", "||", 4, "ERR"},
		{"abcde", "||", 4, "ERR"},
		{strings.Repeat("x", 200000) + "\x00ok", "\x00", 1 << 20, "200000|ok|EOF"},
	} {
		r := bufio.NewReaderSize(strings.NewReader(c.in), 16)
		if s := readEach(t, c.in, func() ([]byte, error) { return readDelimited(r, []byte(c.delim), c.max) }); s != c.want {
			t.Errorf("readDelimited(%.20q, %q, max %d): %q, want %q", c.in, c.delim, c.max, s, c.want)
		}
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`\n`: "\n", `\0`: "\x00", `\t|\r`: "\t|\r", `\\`: `\`, `\x1e`: "\x1e", `::`: "::", `\q`: `\q`, `a\`: `a\`, ``: ``,
	} {
		if got, err := unescape(in); err != nil || got != want {
			t.Errorf("unescape(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{`\x`, `\x1`, `\xzz`} {
		if _, err := unescape(bad); err == nil {
			t.Errorf("unescape(%q) accepted", bad)
		}
	}
}

// readEach calls next until io.EOF or an error and joins what it read with
// "|": each record (its length if over 100 bytes), then EOF or ERR (too
// long; any other error fails the test).
func readEach(t *testing.T, in string, next func() ([]byte, error)) string {
	t.Helper()
	var got []string
	for {
		b, err := next()
		if err == io.EOF {
			return strings.Join(append(got, "EOF"), "|")
		}
		if err != nil {
			if !errors.Is(err, errLineTooLong) {
				t.Errorf("%q: %v", in, err)
			}
			return strings.Join(append(got, "ERR"), "|")
		}
		if len(b) > 100 {
			got = append(got, fmt.Sprint(len(b)))
		} else {
			got = append(got, string(b))
		}
	}
}
