package client

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/brokertest"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/broker"
)

// TestAdvertisedAddressUnreachable: a broker whose EXTERNAL listener
// advertises an address nothing listens on (as a compose cluster that
// advertises container names to the host). A client bootstrapped on the
// listener's real address learns the bad one from the metadata; its
// produce fails with an error naming the address, the broker and the
// listener, and still retriable (UNAVAILABLE) underneath.
func TestAdvertisedAddressUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	b := brokertest.StartBroker(t, func(c *broker.Config) {
		c.APIAddr = ""
		c.Listeners = []string{"CLIENT://127.0.0.1:0", "EXTERNAL://127.0.0.1:0"}
		c.AdvertisedListeners = []string{"EXTERNAL://" + dead}
	})
	createTopic(t, newTestClient(t, b.APIAddr()), "far", 1)

	c := newTestClient(t, b.ListenerAddr("EXTERNAL"))
	p := c.NewProducer(DeliveryTimeout(2 * time.Second))
	defer p.Close(testCtx(t))
	err = p.ProduceSync(testCtx(t), &Record{Topic: "far", Value: []byte("x")}).FirstErr()
	var ue *AdvertisedUnreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("produce through an unreachable advertised address: got %v, want an AdvertisedUnreachableError", err)
	}
	if ue.NodeID != 1 || ue.Addr != dead || ue.Listener != "EXTERNAL" || !errors.Is(err, apierr.ErrUnavailable) {
		t.Fatalf("error %+v: want broker 1 at %s, listener EXTERNAL, UNAVAILABLE underneath", ue, dead)
	}
	for _, want := range []string{"broker 1", dead, "listener EXTERNAL", "--advertised-listeners"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
