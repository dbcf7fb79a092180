package suggest

import (
	"testing"

	"github.com/spf13/pflag"
)

func TestFlag(t *testing.T) {
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	fs.Int("num", 0, "")
	fs.String("allow-principal", "", "")
	fs.String("deny-principal", "", "")
	fs.String("offset", "", "")
	fs.String("debug-clock", "", "")
	fs.MarkHidden("debug-clock")
	for typed, want := range map[string]string{
		"nmu":       " (did you mean --num?)",
		"principal": " (did you mean --allow-principal or --deny-principal?)",
		"off":       " (did you mean --offset?)",
		"xyzzy":     "",
		"ex":        "",
		"debug":     "",
	} {
		if got := Flag(fs, typed); got != want {
			t.Errorf("Flag(%q) = %q, want %q", typed, got, want)
		}
	}
}

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"num", "num", 0}, {"nmu", "num", 2}, {"", "abc", 3}, {"kitten", "sitting", 3}} {
		if got := distance(tc.a, tc.b); got != tc.want {
			t.Errorf("distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
