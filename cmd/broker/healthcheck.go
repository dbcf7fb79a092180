package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/spf13/cobra"
)

// defaultHealthURL is the readiness endpoint of a broker with the default
// --http-addr, and of one listening on 0.0.0.0:9291 probed from its own
// container.
const defaultHealthURL = "http://127.0.0.1:9291/readyz"

// newHealthcheckCmd is `strata-broker healthcheck`: one HTTP GET that exits
// 0 on a 2xx answer and 1 otherwise. It exists for images built FROM
// scratch, which have no curl or wget for a Docker HEALTHCHECK. It checks
// nothing itself: what "healthy" means is the endpoint's decision (/readyz
// for readiness, /healthz for liveness).
func newHealthcheckCmd() *cobra.Command {
	url := defaultHealthURL
	timeout := 3 * time.Second
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Probe a broker's health endpoint; exit 0 if it answers 2xx",
		Long: `healthcheck sends one GET to --url and exits 0 if the answer is 2xx, else
prints why on stderr and exits 1. Use it as a container health probe:
/readyz (the default) is 200 once the broker has joined a cluster and holds
its metadata, /healthz is 200 while the process runs.`,
		Example: `  # Dockerfile
  HEALTHCHECK CMD ["strata-broker", "healthcheck"]

  # liveness of a broker elsewhere
  strata-broker healthcheck --url http://10.0.0.5:9291/healthz --timeout 1s`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return probe(cmd.Context(), url, timeout)
		},
	}
	cmd.Flags().StringVar(&url, "url", url, "endpoint to GET: /readyz for readiness, /healthz for liveness")
	cmd.Flags().DurationVar(&timeout, "timeout", timeout, "give up after this long (connect, answer and body)")
	return cmd
}

// probe GETs url and returns nil for a 2xx status.
func probe(ctx context.Context, url string, timeout time.Duration) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if timeout <= 0 {
		return fmt.Errorf("--timeout must be positive")
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("--url %q: %v", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %v", err)
	}
	defer resp.Body.Close()
	// Read a little of the body: the broker says why it is not ready.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("healthcheck: %s answered %s: %s", url, resp.Status, trimBody(body))
	}
	return nil
}

func trimBody(b []byte) string {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return string(b)
}
