package main

import (
	"context"
	"runtime"
	"strings"
	"testing"

	"github.com/stratalog/strata/pkg/broker"
)

// --version prints one line and does not start a broker.
func TestVersionFlag(t *testing.T) {
	started := false
	cmd := newRootCmd(func(context.Context, broker.Config) error { started = true; return nil })
	var out strings.Builder
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--version"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	want := "strata-broker " + broker.Version + " (" + runtime.Version() + ", " + runtime.GOOS + "/" + runtime.GOARCH
	if started || !strings.HasPrefix(out.String(), want) || strings.Count(out.String(), "\n") != 1 {
		t.Errorf("--version: started %v, printed %q, want a line starting %q", started, out.String(), want)
	}
}
