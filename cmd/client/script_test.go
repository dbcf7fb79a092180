package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/brokertest"
	"github.com/stratalog/strata/pkg/broker"
	"github.com/stratalog/strata/pkg/tlsconfig"
)

// TestScripts runs the CLI as a user does, one script per file in
// testdata/script: each line is a command (`strata ...` runs this
// package's binary as a separate process, against a real broker started
// for the test, STRATA_BROKERS pointing at it); `stdout`, `stderr` and `!`
// assert what it printed and how it exited. Scripts share the broker, so
// each uses its own topic and group names. Add a case by adding a file;
// see https://pkg.go.dev/github.com/rogpeppe/go-internal/testscript for
// the commands. $SILENT_BROKER is an address that accepts connections
// and never answers, as a paused broker does; $WAITING_BROKER is a broker
// that waits for a bootstrap peer that never comes (--bootstrap-expect 2).
func TestScripts(t *testing.T) {
	addr := brokertest.Start(t)
	silent := silentListener(t)
	waitCfg := brokertest.Config(t, 1)
	waitCfg.BootstrapExpect = 2
	waiting := brokertest.Run(t, waitCfg).APIAddr()
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("STRATA_BROKERS", addr)
			env.Setenv("SILENT_BROKER", silent)
			env.Setenv("WAITING_BROKER", waiting)
			env.Setenv("GORACE", noRaceExitSleep())
			return nil
		},
	})
}

// silentListener listens on a loopback port, accepts every connection and
// says nothing on it until the test ends.
func silentListener(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn // the accepting goroutine's until done
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, conn)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, conn := range held {
			conn.Close()
		}
	})
	return ln.Addr().String()
}

// TestScriptsSecure runs testdata/script-secure against one broker with
// three client listeners: $PLAIN_BROKER (PLAINTEXT, where ANONYMOUS is a
// super user, to make users and ACLs), $SASL_BROKER (SASL_PLAINTEXT) and
// $SSL_BROKER (SSL, client certificates requested: their CN is the
// principal). ACLs are enforced (a listener authenticates). $CERTS holds
// the cluster's ca.crt and a client certificate client.alice.crt/.key.
// STRATA_BROKERS is not set: each command names its listener.
func TestScriptsSecure(t *testing.T) {
	certs := t.TempDir()
	ca, err := tlsconfig.NewCA("Strata script CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	write := func(file, name string, hosts ...string) {
		leaf, err := ca.Issue(name, hosts, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlsconfig.WriteFiles(leaf.Cert, leaf.Key, filepath.Join(certs, file+".crt"), filepath.Join(certs, file+".key"), false); err != nil {
			t.Fatal(err)
		}
	}
	if err := tlsconfig.WriteFiles(ca.Cert, ca.Key, filepath.Join(certs, "ca.crt"), filepath.Join(certs, "ca.key"), false); err != nil {
		t.Fatal(err)
	}
	write("broker", "localhost", "localhost", "127.0.0.1")
	write("client.alice", "alice")
	b := brokertest.StartBroker(t, func(c *broker.Config) {
		c.APIAddr = ""
		c.Listeners = []string{"CLIENT://127.0.0.1:0", "SASL://127.0.0.1:0", "SSL://127.0.0.1:0"}
		c.ListenerSecurityProtocolMap = []string{"SASL:SASL_PLAINTEXT"}
		c.TLSCert, c.TLSKey, c.TLSCA = filepath.Join(certs, "broker.crt"), filepath.Join(certs, "broker.key"), filepath.Join(certs, "ca.crt")
		c.TLSClientAuth = "request"
		c.SuperUsers = []string{"User:ANONYMOUS", "User:sc-admin"}
	})
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script-secure",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("PLAIN_BROKER", b.ListenerAddr("CLIENT"))
			env.Setenv("SASL_BROKER", b.ListenerAddr("SASL"))
			env.Setenv("SSL_BROKER", b.ListenerAddr("SSL"))
			env.Setenv("CERTS", certs)
			env.Setenv("GORACE", noRaceExitSleep())
			return nil
		},
	})
}

// TestScriptsCluster runs testdata/script-cluster against three brokers
// (STRATA_BROKERS lists them all), for the commands one broker cannot
// show: partition moves and leadership between brokers, decommission, and
// health with a broker down. `stop-broker N` stops broker N and waits
// until broker 1 no longer sees it alive. The scripts share the cluster
// and run in parallel: a script that stops a broker must be the only one
// that cares.
func TestScriptsCluster(t *testing.T) {
	c := brokertest.StartCluster(t, 3)
	addrs := strings.Join(c.APIAddrs(), ",")
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script-cluster",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("STRATA_BROKERS", addrs)
			env.Setenv("GORACE", noRaceExitSleep())
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"stop-broker": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 1 {
					ts.Fatalf("usage: stop-broker N")
				}
				id, err := strconv.ParseUint(args[0], 10, 32)
				if err != nil || id < 2 || int(id) > len(c.Brokers) {
					ts.Fatalf("stop-broker %s: want 2 to %d (broker 1 answers the wait)", args[0], len(c.Brokers))
				}
				b := c.Brokers[id-1]
				if b == nil {
					ts.Fatalf("broker %d is stopped already", id)
				}
				c.Brokers[id-1] = nil
				ts.Check(b.Close())
				deadline := time.Now().Add(30 * time.Second)
				for brokerAlive(c.Broker(1), uint32(id)) {
					if time.Now().After(deadline) {
						ts.Fatalf("broker 1 still sees broker %d alive after 30s", id)
					}
					time.Sleep(20 * time.Millisecond) // membership has no notification to wait on
				}
			},
		},
	})
}

// brokerAlive says whether b's metadata lists broker id as alive.
func brokerAlive(b *broker.Broker, id uint32) bool {
	md, err := b.Metadata(context.Background(), &v1.MetadataRequest{})
	if err != nil {
		return true // ask again
	}
	for _, br := range md.GetBrokers() {
		if br.GetNodeId() == id {
			return br.GetState() == "alive"
		}
	}
	return false
}

// noRaceExitSleep is GORACE for the commands: under -race a binary sleeps
// atexit_sleep_ms (1 s by default) before it exits, a second for every
// `exec strata` in every script. The caller's other GORACE options stay.
func noRaceExitSleep() string {
	return strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
}
