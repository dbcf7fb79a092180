package broker_test

import (
	"context"
	"fmt"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/brokertest"
	"github.com/stratalog/strata/pkg/broker"
	"github.com/stratalog/strata/pkg/client"
)

// BenchmarkSecurityInterceptorProduce is what authentication and the ACL
// check add to one Produce call: the broker's security interceptor around
// a handler that does nothing, for a SCRAM session whose user is allowed
// by one of n ACLs (the others name other users and topics, a quarter of
// them prefixed), and, as the baseline, for an anonymous call on a broker
// that enforces nothing (the default).
func BenchmarkSecurityInterceptorProduce(b *testing.B) {
	req := &v1.ProduceRequest{Topic: "orders", Partitions: []*v1.ProducePartition{{Partition: 0}}}
	info := &grpc.UnaryServerInfo{FullMethod: v1.Strata_Produce_FullMethodName}
	noop := func(ctx context.Context, req any) (any, error) { return &v1.ProduceResponse{}, nil }
	pctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 40000}})

	b.Run("open", func(b *testing.B) {
		br := brokertest.StartBroker(b)
		intercept := broker.SecurityUnary(br)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := intercept(pctx, req, info, noop); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, n := range []int{10, 1000, 10000} {
		b.Run(fmt.Sprintf("sasl-acls-%d", n), func(b *testing.B) {
			br, plain, sasl := saslBroker(b, func(c *broker.Config) { c.SuperUsers = []string{"User:ANONYMOUS"} })
			c := dial(b, plain)
			ctx := context.Background()
			cred, err := client.ScramCredential("bob", client.ScramSHA256, "pw", 4096)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.UpsertUser(ctx, cred); err != nil {
				b.Fatal(err)
			}
			acls := []*v1.AclBinding{aclFor("User:bob", "write", "topic", "orders", "literal", "allow")}
			for i := 1; i < n; i++ {
				pt := "literal"
				if i%4 == 0 {
					pt = "prefixed"
				}
				acls = append(acls, aclFor(fmt.Sprintf("User:u%d", i), "write", "topic", fmt.Sprintf("topic-%d", i), pt, "allow"))
			}
			for len(acls) > 0 {
				k := min(len(acls), 1000)
				if _, err := c.CreateACLs(ctx, &v1.CreateACLsRequest{Acls: acls[:k]}); err != nil {
					b.Fatal(err)
				}
				acls = acls[k:]
			}
			r, err := loginB(b, dial(b, sasl), "bob", "pw")
			if err != nil {
				b.Fatal(err)
			}
			actx := metadata.NewIncomingContext(broker.WithListener(pctx, "SASL", broker.ProtocolSASLPlaintext),
				metadata.Pairs("authorization", "Bearer "+r.Token))
			intercept := broker.SecurityUnary(br)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := intercept(actx, req, info, noop); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
