package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
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
	if v, _ := strconv.ParseBool(os.Getenv("STRATA_HTTP_TLS")); v {
		url = "https" + strings.TrimPrefix(defaultHealthURL, "http")
	}
	timeout := 3 * time.Second
	// The broker's own variables, so that a probe inside the broker's
	// container needs no flags.
	tf := tlsFlags{ca: os.Getenv("STRATA_TLS_CA"), cert: os.Getenv("STRATA_TLS_CERT"), key: os.Getenv("STRATA_TLS_KEY")}
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "Probe a broker's health endpoint; exit 0 if it answers 2xx",
		Long: `healthcheck sends one GET to --url and exits 0 if the answer is 2xx, else
prints why on stderr and exits 1. Use it as a container health probe:
/readyz (the default) is 200 once the broker has joined a cluster and holds
its metadata, /healthz is 200 while the process runs.

For a broker started with --http-tls, use an https:// URL (the default
URL is https when STRATA_HTTP_TLS is true). The server's certificate is
checked against --tls-ca (default STRATA_TLS_CA, else the system's roots)
and its name against --tls-server-name, or the URL's host; a probe of a
loopback address (127.0.0.1, ::1, localhost) checks the chain only, since
a broker's certificate names the hosts clients dial, rarely loopback.`,
		Example: `  # Dockerfile
  HEALTHCHECK CMD ["strata-broker", "healthcheck"]

  # liveness of a broker elsewhere
  strata-broker healthcheck --url http://10.0.0.5:9291/healthz --timeout 1s

  # a broker with --http-tls
  strata-broker healthcheck --url https://127.0.0.1:9291/readyz --tls-ca certs/ca.crt`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := tf.client(url)
			if err != nil {
				return err
			}
			return probe(cmd.Context(), c, url, timeout)
		},
	}
	cmd.Flags().StringVar(&tf.ca, "tls-ca", tf.ca, "CA bundle the broker's certificate is checked against, for an https URL (default STRATA_TLS_CA, else the system's roots)")
	cmd.Flags().StringVar(&tf.cert, "tls-cert", tf.cert, "client certificate to present, if the listener asks (default STRATA_TLS_CERT)")
	cmd.Flags().StringVar(&tf.key, "tls-key", tf.key, "key of --tls-cert (default STRATA_TLS_KEY)")
	cmd.Flags().StringVar(&tf.serverName, "tls-server-name", "", "name the broker's certificate must carry (default: the URL's host; none for a loopback host)")
	cmd.Flags().StringVar(&url, "url", url, "endpoint to GET: /readyz for readiness, /healthz for liveness")
	cmd.Flags().DurationVar(&timeout, "timeout", timeout, "give up after this long (connect, answer and body)")
	return cmd
}

// probe GETs url and returns nil for a 2xx status.
func probe(ctx context.Context, c *http.Client, url string, timeout time.Duration) error {
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
	resp, err := c.Do(req)
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
