package main

import (
	"context"
	"runtime"
	"strings"
	"testing"

	"github.com/stratalog/strata/pkg/broker"
)

// --version and version (as "strata version") print one line and do not
// start a broker.
func TestVersionFlag(t *testing.T) {
	for _, arg := range []string{"--version", "version"} {
		started := false
		cmd := newRootCmd(func(context.Context, broker.Config) error { started = true; return nil })
		var out strings.Builder
		cmd.SetOut(&out)
		cmd.SetArgs([]string{arg})
		if err := cmd.Execute(); err != nil {
			t.Fatalf("%s: %v", arg, err)
		}
		want := "strata-broker " + broker.Version + " (" + runtime.Version() + ", " + runtime.GOOS + "/" + runtime.GOARCH
		if started || !strings.HasPrefix(out.String(), want) || strings.Count(out.String(), "\n") != 1 {
			t.Errorf("%s: started %v, printed %q, want a line starting %q", arg, started, out.String(), want)
		}
	}
}
