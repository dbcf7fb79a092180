package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/stratalog/strata/pkg/broker"
)

// versionLine is what --version prints: the broker's version (as reported
// in cluster metadata), the Go version and platform, and the source
// revision when the build recorded one.
func versionLine() string {
	rev := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				rev = ", revision " + s.Value
			}
		}
	}
	return fmt.Sprintf("strata-broker %s (%s, %s/%s%s)\n", broker.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH, rev)
}
