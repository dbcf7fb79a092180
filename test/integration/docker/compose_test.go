package docker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/resolver"
)

// nodes is the number of brokers in docker-compose.yml: services strata1..3.
const nodes = 3

// cluster is one Compose project of the repository's docker-compose.yml.
type cluster struct {
	t       *testing.T
	compose []string // "docker-compose", or "docker compose"
	root    string   // repository root: the build context
	file    string   // the test's copy of docker-compose.yml
	project string

	container map[int]string // node id -> container id
	network   string
	// api is each broker's API at its container's address. The test talks
	// to the containers directly, not through the published ports: Docker
	// drops a container's published ports when it is disconnected from its
	// network and does not restore them when it is connected again.
	api map[int]string // node id -> <container ip>:9290
	// external is each broker's EXTERNAL listener as the host reaches it
	// and the broker advertises it: 127.0.0.1:<a free port> in place of
	// the file's 19290, 19390, 19490.
	external map[int]string
}

// run runs a command with a time limit and returns its combined output; the
// error includes the output.
func run(ctx context.Context, limit time.Duration, dir string, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

// docker runs the docker CLI.
func (c *cluster) docker(ctx context.Context, args ...string) (string, error) {
	return run(ctx, time.Minute, c.root, nil, "docker", args...)
}

// composeCmd runs Compose on the test's project.
func (c *cluster) composeCmd(ctx context.Context, limit time.Duration, args ...string) (string, error) {
	all := append(append([]string{}, c.compose[1:]...), "-p", c.project, "-f", c.file, "--project-directory", c.root)
	return run(ctx, limit, c.root, nil, c.compose[0], append(all, args...)...)
}

// requireDocker skips the test when no Docker daemon answers and picks the
// Compose command.
func requireDocker(t *testing.T) []string {
	t.Helper()
	ctx := context.Background()
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("docker is not usable here: no docker command")
	}
	if out, err := run(ctx, 20*time.Second, "", nil, "docker", "version", "--format", "{{.Server.Version}}"); err != nil {
		t.Skipf("docker is not usable here: the daemon does not answer: %v", strings.TrimSpace(out))
	}
	if _, err := exec.LookPath("docker-compose"); err == nil {
		return []string{"docker-compose"}
	}
	if _, err := run(ctx, 20*time.Second, "", nil, "docker", "compose", "version"); err == nil {
		return []string{"docker", "compose"}
	}
	t.Fatal("docker works but neither docker-compose nor docker compose is installed")
	return nil
}

// repoRoot is the directory holding go.mod, above the test's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		dir = filepath.Dir(dir)
	}
	t.Fatal("no go.mod above the test directory")
	return ""
}

// composeClusterSecret is docker-compose.yml's STRATA_CLUSTER_SECRET.
const composeClusterSecret = "strata-compose-dev-secret-not-for-production"

// publishedPort matches a fixed host port published on loopback in
// docker-compose.yml: "127.0.0.1:9391:9291".
var publishedPort = regexp.MustCompile(`"127\.0\.0\.1:\d+:(\d+)"`)

// externalPort matches the host port of a published EXTERNAL listener
// (container port 19290), which the broker also advertises.
var externalPort = regexp.MustCompile(`"127\.0\.0\.1:(\d+):19290"`)

// startCluster builds the binaries and the image and starts the three
// brokers, waiting (bounded) until all are healthy. Everything is removed
// when the test ends.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	ctx := context.Background()
	c := &cluster{t: t, compose: requireDocker(t), root: repoRoot(t), container: map[int]string{}, api: map[int]string{}, external: map[int]string{}}
	var rnd [4]byte
	rand.Read(rnd[:])
	c.project = "strata-it-" + hex.EncodeToString(rnd[:])

	// The image copies bin/ from the build context, so build there, as
	// `make build` does.
	start := time.Now()
	for _, b := range [][2]string{{"bin/strata-broker", "./cmd/broker"}, {"bin/strata", "./cmd/client"}} {
		if _, err := run(ctx, 3*time.Minute, c.root, []string{"CGO_ENABLED=0"}, "go", "build", "-trimpath", "-o", b[0], b[1]); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("built the static binaries in %s", time.Since(start).Round(time.Millisecond))

	// The repository's compose file, with every host port ephemeral but
	// the EXTERNAL listeners': those are advertised, so each gets a free
	// port, the same in its published port and its advertised address.
	src, err := os.ReadFile(filepath.Join(c.root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(src), "STRATA_CLUSTER_SECRET: "+composeClusterSecret) {
		t.Fatalf("docker-compose.yml does not set STRATA_CLUSTER_SECRET: %s, which the test dials the inter-broker listeners with", composeClusterSecret)
	}
	if n := len(publishedPort.FindAll(src, -1)); n != 2*nodes {
		t.Fatalf("docker-compose.yml publishes %d loopback ports, the test expects %d (EXTERNAL listener and HTTP per broker)", n, 2*nodes)
	}
	ext := externalPort.FindAllSubmatch(src, -1)
	if len(ext) != nodes {
		t.Fatalf("docker-compose.yml publishes %d EXTERNAL listeners (container port 19290), the test expects %d", len(ext), nodes)
	}
	for i, m := range ext {
		addr := "127.0.0.1:" + freePort(t)
		src = bytes.ReplaceAll(src, []byte("127.0.0.1:"+string(m[1])), []byte(addr))
		c.external[i+1] = addr
	}
	src = publishedPort.ReplaceAllFunc(src, func(m []byte) []byte {
		if externalPort.Match(m) {
			return m
		}
		return publishedPort.ReplaceAll(m, []byte(`"127.0.0.1::$1"`))
	})
	c.file = filepath.Join(t.TempDir(), "docker-compose.yml")
	if err := os.WriteFile(c.file, src, 0o644); err != nil {
		t.Fatal(err)
	}

	t.Cleanup(c.down)
	start = time.Now()
	if _, err := c.composeCmd(ctx, 5*time.Minute, "up", "-d", "--build"); err != nil {
		t.Fatal(err)
	}
	for id := 1; id <= nodes; id++ {
		svc := fmt.Sprintf("strata%d", id)
		out, err := c.composeCmd(ctx, time.Minute, "ps", "-q", svc)
		if err != nil {
			t.Fatal(err)
		}
		if c.container[id] = strings.TrimSpace(out); c.container[id] == "" {
			t.Fatalf("no container for %s", svc)
		}
	}
	out, err := c.docker(ctx, "inspect", "-f", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}", c.container[1])
	if err != nil {
		t.Fatal(err)
	}
	if nets := strings.Fields(out); len(nets) != 1 {
		t.Fatalf("strata1 is on networks %q, want exactly one", nets)
	} else {
		c.network = nets[0]
	}
	for id := 1; id <= nodes; id++ {
		c.api[id] = net.JoinHostPort(c.ip(id), "9290")
	}
	if conn, err := net.DialTimeout("tcp", c.api[1], 5*time.Second); err != nil {
		// Docker Desktop and daemons in their own network namespace
		// (rootless, remote) do not route container addresses to the host.
		t.Skipf("this Docker's container addresses are not reachable from the host: %v", err)
	} else {
		conn.Close()
	}
	c.waitHealthy(90 * time.Second)
	t.Logf("project %s up and healthy in %s: API %v, network %s", c.project, time.Since(start).Round(time.Millisecond), c.api, c.network)
	return c
}

// down removes the project: containers, network, volumes and the images it
// built. A paused container is unpaused first. On failure the brokers'
// logs are printed.
func (c *cluster) down() {
	ctx := context.Background()
	if out, err := c.composeCmd(ctx, time.Minute, "ps", "-q"); err == nil {
		for _, id := range strings.Fields(out) {
			c.docker(ctx, "unpause", id) // most are not paused: ignore the error
		}
	}
	if c.t.Failed() {
		if out, err := c.composeCmd(ctx, time.Minute, "logs", "--no-color", "--tail", "300"); err == nil {
			c.t.Logf("broker logs:\n%s", out)
		}
	}
	if out, err := c.composeCmd(ctx, 3*time.Minute, "down", "-v", "--rmi", "local", "--remove-orphans", "-t", "20"); err != nil {
		c.t.Errorf("cleanup: %v\n%s", err, out)
	}
}

// waitHealthy waits until Docker reports every broker healthy (its
// HEALTHCHECK: strata-broker healthcheck on /readyz).
func (c *cluster) waitHealthy(limit time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var state string
	for {
		out, err := c.docker(context.Background(), append([]string{"inspect", "-f", "{{.State.Health.Status}}"}, c.ids()...)...)
		if err != nil {
			c.t.Fatal(err)
		}
		state = strings.Join(strings.Fields(out), ",")
		if strings.Count(state, "healthy") == nodes && !strings.Contains(state, "unhealthy") {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("brokers not healthy within %s: %s", limit, state)
		}
		<-tick.C
	}
}

func (c *cluster) ids() []string {
	var ids []string
	for id := 1; id <= nodes; id++ {
		ids = append(ids, c.container[id])
	}
	return ids
}

// disconnect cuts broker id off the project network.
func (c *cluster) disconnect(id int) {
	c.t.Helper()
	if _, err := c.docker(context.Background(), "network", "disconnect", c.network, c.container[id]); err != nil {
		c.t.Fatal(err)
	}
}

// reconnect puts broker id back on the network under its service name (a
// disconnect drops the alias). Docker gives back the lowest free address,
// normally the old one; memberlist advertises the address it started with,
// so a change is reported.
func (c *cluster) reconnect(id int, oldIP string) {
	c.t.Helper()
	if _, err := c.docker(context.Background(), "network", "connect", "--alias", fmt.Sprintf("strata%d", id), c.network, c.container[id]); err != nil {
		c.t.Fatal(err)
	}
	if ip := c.ip(id); ip != oldIP {
		c.t.Logf("strata%d came back as %s, was %s: gossip advertises the old address", id, ip, oldIP)
	}
}

// ip is broker id's address on the project network.
func (c *cluster) ip(id int) string {
	c.t.Helper()
	out, err := c.docker(context.Background(), "inspect", "-f", fmt.Sprintf("{{(index .NetworkSettings.Networks %q).IPAddress}}", c.network), c.container[id])
	if err != nil {
		c.t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

func (c *cluster) pause(id int) {
	c.t.Helper()
	if _, err := c.docker(context.Background(), "pause", c.container[id]); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) unpause(id int) {
	c.t.Helper()
	if _, err := c.docker(context.Background(), "unpause", c.container[id]); err != nil {
		c.t.Fatal(err)
	}
}

// stop stops every broker cleanly (SIGTERM) so their data can be copied.
func (c *cluster) stop() {
	c.t.Helper()
	if _, err := c.composeCmd(context.Background(), 2*time.Minute, "stop", "-t", "30"); err != nil {
		c.t.Fatal(err)
	}
}

// copyData copies broker id's /data volume to dst (the container may be
// stopped).
func (c *cluster) copyData(id int, dst string) {
	c.t.Helper()
	if _, err := c.docker(context.Background(), "cp", c.container[id]+":/data", dst); err != nil {
		c.t.Fatal(err)
	}
}

// advertised maps the API addresses the brokers advertise (strata1:9290 ...)
// to their containers' addresses.
func (c *cluster) advertised() map[string]string {
	m := map[string]string{}
	for id, addr := range c.api {
		m[fmt.Sprintf("strata%d:9290", id)] = addr
	}
	return m
}

// hostMap is a gRPC resolver for the "dns" scheme (the default of
// grpc.NewClient) that answers from a fixed table, so a client on the host
// can follow the brokers' advertised addresses, which resolve only inside
// the Compose network. Addresses not in the table pass through unchanged.
type hostMap map[string]string

func (m hostMap) Build(target resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	addr := target.Endpoint()
	if to, ok := m[addr]; ok {
		addr = to
	}
	if err := cc.UpdateState(resolver.State{Addresses: []resolver.Address{{Addr: addr}}}); err != nil {
		return nil, err
	}
	return fixed{}, nil
}

func (hostMap) Scheme() string { return "dns" }

// fixed is a resolver whose answer never changes.
type fixed struct{}

func (fixed) ResolveNow(resolver.ResolveNowOptions) {}
func (fixed) Close()                                {}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}
