package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/pkg/client"
	"github.com/stratalog/strata/pkg/record"
)

func TestFormatRender(t *testing.T) {
	r := &client.Record{
		Topic: "events", Partition: 2, Offset: 47,
		Key: []byte("k1"), Value: []byte("hello"),
		Headers:   []record.Header{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("2")}},
		Timestamp: time.UnixMilli(1700000000123),
	}
	null := &client.Record{Topic: "events", Value: nil}
	for _, c := range []struct {
		format string
		rec    *client.Record
		want   string
	}{
		{defaultFormat, r, "hello\n"},
		{`%t %p %o %k %v %T %h\n`, r, "events 2 47 k1 hello 1700000000123 a=1,b=2\n"},
		{`%K/%S`, r, "2/5"},
		{`%t %p %o %k %s %T %h %K %S\n`, r, "events 2 47 k1 hello 1700000000123 a=1,b=2 2 5\n"}, // kcat's
		{`%v %V %d %H`, r, "hello 5 1700000000123 2"},                                           // rpk's
		{`%s|%V|%H`, null, "|-1|0"},
		{`[%k][%v] %K %S`, null, "[][] -1 -1"},
		{`100%% %v\t|\r\\`, r, "100% hello\t|\r\\"},
		{`\x`, r, `\x`}, // unknown escapes stay as typed
		{`tail\`, r, `tail\`},
		{`%h`, null, ""},
		{`plain`, r, "plain"},
	} {
		f, err := parseFormat(c.format)
		if err != nil {
			t.Errorf("parseFormat(%q): %v", c.format, err)
			continue
		}
		if got := string(f.render(nil, c.rec)); got != c.want {
			t.Errorf("format %q: got %q, want %q", c.format, got, c.want)
		}
	}
}

func TestFormatErrors(t *testing.T) {
	for in, want := range map[string]string{
		"%z":    "unknown verb %z",
		"100%":  "lone %",
		"%v %Q": "unknown verb %Q",
	} {
		_, err := parseFormat(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseFormat(%q): %v, want %q", in, err, want)
		}
	}
}
