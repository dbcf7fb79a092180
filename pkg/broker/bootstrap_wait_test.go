package broker_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/brokertest"
	"github.com/stratalog/strata/pkg/client"
)

// A broker waiting for its bootstrap peers says whom it has and whom it
// waits for, not only in its log: /readyz and the API's not-ready error
// carry the same words, so a probe or a client asking it learns that it
// waits for --bootstrap-expect brokers and which it sees.
func TestBootstrapWaitIsReported(t *testing.T) {
	cfg := brokertest.Config(t, 1)
	cfg.BootstrapExpect = 2
	b := brokertest.Run(t, cfg)
	want := "waiting for brokers to start the cluster: --bootstrap-expect 2, sees 1 (1@"

	var body string
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(body, want) {
		if time.Now().After(deadline) {
			t.Fatalf("/readyz says %q after 10s, want %q", body, want)
		}
		resp, err := http.Get("http://" + b.HTTPAddr() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("/readyz: %s %q, want 503", resp.Status, got)
		}
		body = string(got)
		time.Sleep(20 * time.Millisecond) // the controller's wake-ups are not observable from here
	}
	if !strings.Contains(body, "--join is not set") {
		t.Errorf("/readyz: %q does not say --join is not set", body)
	}

	c, err := client.New([]string{b.APIAddr()}, client.RetryTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Admin().ListTopics(context.Background())
	if err == nil || !strings.Contains(err.Error(), "broker not ready: "+want) {
		t.Errorf("API call on a waiting broker: %v, want %q", err, want)
	}
}
