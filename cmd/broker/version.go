package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/stratalog/strata/pkg/broker"
)

// newVersionCmd is "strata-broker version", the same line as --version:
// "strata version" is how the CLI says it, and a user types both.
func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the broker's version and the Go version it was built with (as --version)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := io.WriteString(cmd.OutOrStdout(), versionLine())
			return err
		},
	}
}

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
