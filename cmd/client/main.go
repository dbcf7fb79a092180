// Command strata is the command-line client for Strata: topic
// administration, producing from stdin, consuming to stdout, cluster
// information and benchmarks. Build it with
//
//	go build -o strata ./cmd/client
//
// and run "strata --help" for the commands.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/stratalog/strata/pkg/client"
	"golang.org/x/term"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &env{
		stdin:  os.Stdin,
		stdout: os.Stdout,
		stderr: os.Stderr,
		getenv: os.Getenv,
		isTerminal: func() bool {
			return term.IsTerminal(int(os.Stdout.Fd()))
		},
	}
	os.Exit(run(ctx, e, os.Args[1:]))
}

// env is what a command may touch of the outside world; tests swap it.
type env struct {
	stdin      io.Reader
	stdout     io.Writer
	stderr     io.Writer
	getenv     func(string) string
	isTerminal func() bool // is stdout a terminal (for progress lines)

	// Global flags.
	brokers []string
	output  string
	timeout time.Duration
	tls     tlsFlags  // tls.go
	auth    authFlags // auth.go
}

// run executes the command line args and returns the exit code. Errors
// are printed as one line, "strata: <reason>", with advice where the
// reason has an obvious remedy.
func run(ctx context.Context, e *env, args []string) int {
	root := newRootCmd(e)
	root.SetArgs(args)
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	if cmd, err := root.ExecuteContextC(ctx); err != nil {
		printError(e.stderr, e, cmd, err) // cli.go
		return 1
	}
	return 0
}

const defaultBrokers = "127.0.0.1:9290"

func newRootCmd(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "strata",
		Short: "Command-line client for Strata, a Kafka-like commit log",
		Long: `strata talks to a Strata cluster over its gRPC API.

Topics are created, described and configured with "strata topic"; records
are written from stdin with "strata produce" and read to stdout with
"strata consume" (alone, or as a member of a consumer group with --group,
managed with "strata group"); "strata cluster info" shows the brokers, and
"strata bench" measures throughput and latency.

Brokers are found from --brokers, else the STRATA_BROKERS environment
variable (comma-separated host:port list), else ` + defaultBrokers + `. One
reachable broker is enough: the rest are learned from cluster metadata.

Errors are printed as one line on stderr, "strata: <reason>", and the exit
status is non-zero.` + tlsHelp,
		Example: `  strata topic create events -p 3
  printf 'hello\nworld\n' | strata produce events
  strata consume events -n 2
  STRATA_BROKERS=10.0.0.1:9290 strata cluster info -o json` + tlsExamples,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			switch e.output {
			case "table", "json":
			default:
				return usageErrorf("--output %q: want table or json", e.output)
			}
			if err := e.checkTimeout(cmd); err != nil {
				return err
			}
			if !cmd.Flags().Changed("brokers") {
				if v := e.getenv("STRATA_BROKERS"); v != "" {
					e.brokers = splitList(v)
				}
			}
			return e.tls.fromEnv(cmd, e.getenv)
		},
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return flagError(cmd, err) }) // cli.go
	pf := root.PersistentFlags()
	pf.StringSliceVar(&e.brokers, "brokers", []string{defaultBrokers}, "broker API addresses, comma-separated (env STRATA_BROKERS)")
	pf.StringVarP(&e.output, "output", "o", "table", "output format: table or json")
	pf.DurationVar(&e.timeout, "timeout", 10*time.Second, timeoutHelp)
	e.tls.register(pf)
	e.auth.bind(pf)
	root.AddCommand(newTopicCmd(e), newProduceCmd(e), newConsumeCmd(e), newClusterCmd(e), newBenchCmd(e),
		newPartitionCmd(e), newBrokerCmd(e), newGroupCmd(e), newCertCmd(e), newUserCmd(e), newACLCmd(e))
	finishRoot(root, e) // version.go
	return root
}

// newClient connects to the brokers of the global flags.
func (e *env) newClient(opts ...client.Opt) (*client.Client, error) {
	sasl, err := e.saslOpts()
	if err != nil {
		return nil, err
	}
	if err := e.tls.check(); err != nil {
		return nil, err
	}
	// FailFast: a user who typed a wrong address or forgot to start the
	// broker hears so at once, not after the retry timeout.
	base := append([]client.Opt{client.RetryTimeout(e.retryTimeout()), client.FailFast()}, e.tls.opts()...)
	base = append(base, sasl...)
	return client.New(e.brokers, append(base, opts...)...)
}

// adminCtx bounds an admin call by --timeout.
func (e *env) adminCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return e.limitCtx(ctx) // timeout.go: 0 = no limit
}

// admin runs fn with the admin API of a new client and ctx bounded by
// --timeout; the client is closed when fn returns.
func (e *env) admin(ctx context.Context, fn func(context.Context, *client.Admin) error) error {
	c, err := e.newClient()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := e.adminCtx(ctx)
	defer cancel()
	return fn(ctx, c.Admin())
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
