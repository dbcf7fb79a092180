package docker

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/pkg/client"
)

// TestExternalListener: from the host, with no resolver tricks, the client
// library and the CLI produce and consume through the brokers' EXTERNAL
// listeners, which docker-compose.yml publishes on loopback and advertises
// as such (the CLIENT listener's strataN:9290 do not resolve here).
func TestExternalListener(t *testing.T) {
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	cl, err := client.New([]string{c.external[1]}, client.RetryTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	md, err := cl.Admin().Metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if md.Listener != "EXTERNAL" || len(md.Brokers) != nodes {
		t.Fatalf("metadata through EXTERNAL: listener %q, %d brokers; want EXTERNAL and %d", md.Listener, len(md.Brokers), nodes)
	}
	for _, b := range md.Brokers {
		if want := c.external[int(b.NodeID)]; b.APIAddr != want {
			t.Errorf("broker %d advertised %s through EXTERNAL, want %s", b.NodeID, b.APIAddr, want)
		}
	}
	if _, err := cl.Admin().CreateTopic(ctx, "ext", 3, nodes, nil); err != nil {
		t.Fatal(err)
	}
	p := cl.NewProducer()
	var recs []*client.Record
	for i := range 30 {
		recs = append(recs, &client.Record{Topic: "ext", Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprint("v", i))})
	}
	if err := p.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	cs, err := cl.NewConsumer("ext", client.StartAt(client.Earliest()))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	got := map[string]bool{}
	for len(got) < len(recs) && ctx.Err() == nil {
		rs, err := cs.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			got[string(r.Value)] = true
		}
	}
	if len(got) != len(recs) {
		t.Fatalf("consumed %d distinct records through EXTERNAL, want %d", len(got), len(recs))
	}

	// The CLI, as README shows: seq 1 5 | strata --brokers ... produce t.
	strata := filepath.Join(c.root, "bin", "strata")
	brokers := "--brokers=" + c.external[2]
	if out, err := runStdin(ctx, "1\n2\n3\n4\n5\n", strata, brokers, "topic", "create", "t", "--partitions", "3", "--replicas", "3"); err != nil {
		t.Fatalf("strata topic create: %v\n%s", err, out)
	}
	if out, err := runStdin(ctx, "1\n2\n3\n4\n5\n", strata, brokers, "produce", "t"); err != nil {
		t.Fatalf("strata produce: %v\n%s", err, out)
	}
	out, err := runStdin(ctx, "", strata, brokers, "consume", "t", "--offset", "start", "--num", "5", "--format", "%v\n")
	if err != nil {
		t.Fatalf("strata consume: %v\n%s", err, out)
	}
	vals := strings.Fields(out)
	slices.Sort(vals)
	if strings.Join(vals, ",") != "1,2,3,4,5" {
		t.Fatalf("strata consume printed %q, want 1..5", out)
	}
}

// runStdin runs a command with stdin and returns its combined output.
func runStdin(ctx context.Context, stdin, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
