package docker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestSecureCompose runs docker-compose.secure.yml as README shows it:
// certificates from `strata cert`, the cluster up and healthy over HTTPS,
// then from the host the super user (client certificate, ADMIN listener)
// creates a user, a topic and ACLs, and the user produces and consumes with
// a password over the EXTERNAL listener (SASL_SSL). What the user may not
// do, a client without the CA and a wrong password are refused with the
// CLI's advice.
func TestSecureCompose(t *testing.T) {
	c := &cluster{t: t, compose: requireDocker(t), root: repoRoot(t), container: map[int]string{}, api: map[int]string{}, external: map[int]string{}}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	var rnd [4]byte
	rand.Read(rnd[:])
	c.project = "strata-sec-" + hex.EncodeToString(rnd[:])
	for _, b := range [][2]string{{"bin/strata-broker", "./cmd/broker"}, {"bin/strata", "./cmd/client"}} {
		if _, err := run(ctx, 3*time.Minute, c.root, []string{"CGO_ENABLED=0"}, "go", "build", "-trimpath", "-o", b[0], b[1]); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(c.root, "bin", "strata")
	strata := func(stdin string, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Stdin = strings.NewReader(stdin)
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "STRATA_") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	// The certificates, as README makes them, in a directory of the test's.
	certs := t.TempDir()
	caKey := filepath.Join(t.TempDir(), "ca.key")
	for _, args := range [][]string{
		{"cert", "create-ca"},
		{"cert", "create-broker", "strata1", "strata2", "strata3", "localhost", "127.0.0.1"},
		{"cert", "create-client", "admin"},
	} {
		if out, err := strata("", append(args, "--certs-dir", certs, "--ca-key", caKey)...); err != nil {
			t.Fatalf("strata %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	// The repository's file with the certificates' directory and free host
	// ports: EXTERNAL and ADMIN are advertised, so each gets a port that
	// is the same in its published port and its advertised address; HTTP
	// ports become ephemeral.
	src, err := os.ReadFile(filepath.Join(c.root, "docker-compose.secure.yml"))
	if err != nil {
		t.Fatal(err)
	}
	src = bytes.ReplaceAll(src, []byte("./certs/compose/"), []byte(certs+"/"))
	admin := map[int]string{}
	for _, l := range []struct {
		port string
		to   map[int]string
	}{{"19290", c.external}, {"19294", admin}} {
		m := regexp.MustCompile(`"127\.0\.0\.1:(\d+):`+l.port+`"`).FindAllSubmatch(src, -1)
		if len(m) != nodes {
			t.Fatalf("docker-compose.secure.yml publishes container port %s %d times, the test expects %d", l.port, len(m), nodes)
		}
		for i, p := range m {
			addr := "127.0.0.1:" + freePort(t)
			src = bytes.ReplaceAll(src, []byte("127.0.0.1:"+string(p[1])), []byte(addr))
			l.to[i+1] = addr
		}
	}
	src = regexp.MustCompile(`"127\.0\.0\.1:\d+:9291"`).ReplaceAll(src, []byte(`"127.0.0.1::9291"`))
	c.file = filepath.Join(t.TempDir(), "docker-compose.secure.yml")
	if err := os.WriteFile(c.file, src, 0o644); err != nil {
		t.Fatal(err)
	}

	t.Cleanup(c.down)
	start := time.Now()
	if _, err := c.composeCmd(ctx, 5*time.Minute, "up", "-d", "--build"); err != nil {
		t.Fatal(err)
	}
	for id := 1; id <= nodes; id++ {
		out, err := c.composeCmd(ctx, time.Minute, "ps", "-q", fmt.Sprintf("strata%d", id))
		if err != nil {
			t.Fatal(err)
		}
		if c.container[id] = strings.TrimSpace(out); c.container[id] == "" {
			t.Fatalf("no container for strata%d", id)
		}
	}
	c.waitHealthy(2 * time.Minute) // the healthcheck reads /readyz over HTTPS
	t.Logf("secure project %s healthy in %s", c.project, time.Since(start).Round(time.Millisecond))

	ca := "--tls-ca=" + filepath.Join(certs, "ca.crt")
	asAdmin := []string{"--brokers=" + admin[1], ca, "--tls-cert=" + filepath.Join(certs, "client.admin.crt"), "--tls-key=" + filepath.Join(certs, "client.admin.key")}
	asAlice := []string{"--brokers=" + c.external[2], ca, "--user=alice", "--password=alice-secret"}
	for _, args := range [][]string{
		append(asAdmin, "user", "create", "alice", "--password", "alice-secret"),
		append(asAdmin, "topic", "create", "orders", "--partitions", "3", "--replicas", "3"),
		append(asAdmin, "acl", "create", "--allow-principal", "User:alice", "--operation", "write", "--topic", "orders"),
		append(asAdmin, "acl", "create", "--allow-principal", "User:alice", "--operation", "read", "--topic", "orders", "--group", "billing"),
	} {
		if out, err := strata("", args...); err != nil {
			t.Fatalf("strata %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if out, err := strata("1\n2\n3\n4\n5\n", append(asAlice, "produce", "orders")...); err != nil {
		t.Fatalf("alice produce: %v\n%s", err, out)
	}
	// ACLs reach the other brokers when they apply the metadata change
	// (asynchronously, as in Kafka): poll until the group's is there.
	var out string
	for began := time.Now(); ; {
		if out, err = strata("", append(asAlice, "consume", "orders", "--group", "billing", "-n", "5", "--format", "%v\n")...); err == nil {
			t.Logf("alice consumed after %s", time.Since(began).Round(time.Millisecond))
			break
		}
		if !strings.Contains(out, "may not DESCRIBE group billing") || time.Since(began) > 30*time.Second {
			t.Fatalf("alice consume: %v\n%s", err, out)
		}
		time.Sleep(200 * time.Millisecond) // an ACL's arrival has no notification to wait on
	}
	if got := strings.Fields(out); len(got) != 5 {
		t.Fatalf("alice consumed %q, want 5 records", out)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{append(asAlice, "topic", "delete", "orders"), "User:alice may not DELETE topic orders"},
		{[]string{"--brokers=" + c.external[1], "--user=alice", "--password=alice-secret", "topic", "list"}, "expects TLS and this client connects in plaintext: pass --tls-ca"},
		{[]string{"--brokers=" + c.external[1], ca, "--user=alice", "--password=wrong", "topic", "list"}, "authentication failed for user alice"},
		{[]string{"--brokers=" + c.external[1], ca, "topic", "list"}, "requires SASL/SCRAM authentication"},
	} {
		if out, err := strata("", tc.args...); err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("strata %s: %v %q; want it refused saying %q", strings.Join(tc.args, " "), err, out, tc.want)
		}
	}
}
