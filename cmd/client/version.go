package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is the release this binary was built as, set at build time:
//
//	go build -ldflags "-X main.version=v1.2.0" ./cmd/client
//
// Without it, the module version go build recorded is used ("(devel)"
// in a checkout), with the VCS revision when there is one.
var version = ""

type versionJSON struct {
	Version   string `json:"version"`
	Revision  string `json:"revision,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

func buildVersion() versionJSON {
	v := versionJSON{Version: version, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v.Version == "" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Revision = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	if v.Version == "" || v.Version == "(devel)" {
		v.Version = "dev"
	}
	return v
}

func (e *env) printVersion() error {
	v := buildVersion()
	if e.output == "json" {
		return printJSON(e.stdout, v)
	}
	rev := ""
	if v.Revision != "" {
		rev = ", revision " + v.Revision
		if v.Modified {
			rev += " (modified)"
		}
	}
	_, err := fmt.Fprintf(e.stdout, "strata %s (%s, %s%s)\n", v.Version, v.GoVersion, v.Platform, rev)
	return err
}

func newVersionCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the client's version and the Go version it was built with",
		Long: `Print this client's version, the Go version and platform it was built for,
and the source revision when the build recorded one. It does not contact
the cluster: "strata cluster info" shows each broker's version.`,
		Example: `  strata version
  strata --version
  strata version -o json`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return e.printVersion() },
	}
}

// finishRoot adds what the whole tree shares: the version command and
// --version flag, and the typo and argument handling of cli.go.
func finishRoot(root *cobra.Command, e *env) {
	root.AddCommand(newVersionCmd(e))
	finishTree(root)
	var showVersion bool
	root.Flags().BoolVar(&showVersion, "version", false, "print the client's version (as \"strata version\")")
	groupRun := root.RunE
	root.RunE = func(cmd *cobra.Command, args []string) error {
		if showVersion && len(args) == 0 {
			return e.printVersion()
		}
		return groupRun(cmd, args)
	}
}
