// Command strata-broker runs a Strata broker.
//
// With no flags it is a single-node cluster on loopback with its data in
// ./strata-data. Flags, STRATA_* environment variables and a YAML config
// file (--config) set everything else; see --help.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"syscall"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/stratalog/strata/internal/suggest"
	"github.com/stratalog/strata/pkg/broker"
)

func main() {
	cmd, err := newRootCmd(run).ExecuteC()
	if err != nil {
		fmt.Fprintln(os.Stderr, "strata-broker:", err)
		var ue *usageError
		if errors.As(err, &ue) {
			use := cmd.CommandPath()
			if cmd.HasAvailableSubCommands() {
				use += " [command]"
			}
			fmt.Fprintf(os.Stderr, "usage: %s [flags] (see: %s --help)\n", use, cmd.CommandPath())
		}
		os.Exit(1)
	}
}

// usageError is a mistake on the command line: main follows it with the
// usage line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

var unknownFlagRE = regexp.MustCompile(`^unknown flag: --([^\s=]+)$`)

// flagError adds to pflag's "unknown flag: --data-dri" the flags it may
// have meant (cobra suggests commands only).
func flagError(cmd *cobra.Command, err error) error {
	msg := err.Error()
	if m := unknownFlagRE.FindStringSubmatch(msg); m != nil {
		msg += suggest.Flag(cmd.Flags(), m[1])
	}
	return &usageError{msg}
}

// noArgs is cobra.NoArgs with the subcommand an argument may be a typo of
// ("unknown command "verfy" (did you mean "verify"?)").
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2 // cobra's default, set only on its own path
	}
	return &usageError{fmt.Sprintf("unknown command %q for %q%s", args[0], cmd.CommandPath(), suggest.Words(cmd.SuggestionsFor(args[0])))}
}

// newRootCmd builds the command; runFn receives the final config (tests
// pass their own to check flag, environment and file layering).
func newRootCmd(runFn func(context.Context, broker.Config) error) *cobra.Command {
	cfg := broker.DefaultConfig()
	var configFile, clockFile string
	cmd := &cobra.Command{
		Use:   "strata-broker",
		Short: "Run a Strata broker",
		Long: `strata-broker runs one Strata broker: a replicated commit log server.

With no flags it starts a single-node cluster: the API on 127.0.0.1:9290, metrics
and health on http://127.0.0.1:9291, data in ./strata-data. It prints one line
saying where it listens, logs to stderr, and shuts down cleanly on SIGINT or
SIGTERM (every partition's log is fsynced and closed).

Every flag can also be set with an environment variable STRATA_<FLAG> (upper
case, dashes as underscores, e.g. STRATA_DATA_DIR) or in a YAML file given with
--config (keys are the flag names). Flags win over the environment, which wins
over the file.`,
		Example: `  # single-node cluster in ./strata-data
  strata-broker

  # elsewhere, with faster interval fsync and topics created on first produce
  strata-broker --data-dir /var/lib/strata --api-addr 0.0.0.0:9290 --fsync interval --auto-create-topics

  # from a config file
  strata-broker --config /etc/strata/broker.yaml`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := loadConfig(cmd, configFile, &cfg); err != nil {
				return err
			}
			if clockFile != "" {
				cfg.Clock = (&fileClock{path: clockFile}).now
			}
			return runFn(cmd.Context(), cfg)
		},
	}
	bindFlags(cmd, &cfg, &configFile)
	cmd.SetFlagErrorFunc(flagError)
	cmd.Version = broker.Version // --version (version.go)
	cmd.Flags().Bool("version", false, "print the broker's version and the Go version it was built with, and exit")
	cmd.SetVersionTemplate(versionLine())
	// Fault-injection tests only (debugclock.go): not in --help, the
	// environment or the config file.
	cmd.Flags().StringVar(&clockFile, "debug-clock-offset-file", "", "file holding an offset (Go duration) added to the wall clock the broker decides retention, compaction and group expiry by")
	cmd.Flags().MarkHidden("debug-clock-offset-file")
	cmd.AddCommand(newHealthcheckCmd(), newVerifyCmd(), newVersionCmd())
	return cmd
}

func run(ctx context.Context, cfg broker.Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	log, err := newLogger(cfg.LogLevel)
	if err != nil {
		return err
	}
	defer log.Sync()
	b, err := broker.New(cfg, log)
	if err != nil {
		return err
	}
	if err := b.Start(); err != nil {
		b.Close()
		return err
	}
	scheme := "http"
	if cfg.HTTPTLS {
		scheme = "https"
	}
	fmt.Printf("strata-broker %s listening: api=%s http=%s://%s data-dir=%s\n", broker.Version, b.APIAddr(), scheme, b.HTTPAddr(), cfg.DataDir)
	for _, l := range b.Listeners() {
		fmt.Printf("  listener %s\n", l)
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	stopWithGoRun() // after NotifyContext: its SIGTERM is a clean stop
	<-ctx.Done()
	log.Info("shutting down")
	if err := b.Close(); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped cleanly")
	return nil
}

func newLogger(level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.Encoding = "console"
	zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	zc.OutputPaths = []string{"stderr"}
	return zc.Build()
}
