package transport

import (
	"net"
	"strconv"
	"testing"
	"time"
)

// A socket connected to itself (TCP simultaneous open to a local port in
// the ephemeral range that nobody listens on) is recognised. The test
// makes one on purpose: bind to a free port, then connect to that same
// port from it.
func TestSelfConnectedIsRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("could not make a self-connection to check (Linux allows one): %v", err)
	}
	defer nc.Close()
	if !selfConnected(nc) {
		t.Fatalf("%s -> %s not seen as a self-connection", nc.LocalAddr(), nc.RemoteAddr())
	}
	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	c, err := net.Dial("tcp", other.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if selfConnected(c) {
		t.Fatal("an ordinary connection seen as a self-connection")
	}
}
