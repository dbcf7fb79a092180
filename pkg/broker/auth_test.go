package broker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/xdg-go/scram"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/brokertest"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/broker"
	"github.com/stratalog/strata/pkg/client"
)

// Authentication (SASL/SCRAM sessions) and authorization (ACLs) against a
// real broker over gRPC (issue 12 items 7, 8, 11).

// TestEveryMethodHasACLMapping: every method of the client API says what
// the authorizer checks; a method added without a mapping fails here
// (and would be refused to every principal but super users).
func TestEveryMethodHasACLMapping(t *testing.T) {
	var methods []string
	for _, m := range v1.Strata_ServiceDesc.Methods {
		methods = append(methods, "/"+v1.Strata_ServiceDesc.ServiceName+"/"+m.MethodName)
	}
	for _, s := range v1.Strata_ServiceDesc.Streams {
		methods = append(methods, "/"+v1.Strata_ServiceDesc.ServiceName+"/"+s.StreamName)
	}
	if missing := broker.MethodsWithoutACLMapping(methods); len(missing) > 0 {
		t.Fatalf("methods with no ACL checks (pkg/broker/authz.go methodChecks): %v", missing)
	}
}

// saslBroker starts a broker with two client listeners, CLIENT
// (PLAINTEXT) and SASL (SASL_PLAINTEXT), and returns their addresses.
func saslBroker(t testing.TB, opts ...func(*broker.Config)) (b *broker.Broker, plain, sasl string) {
	b = brokertest.StartBroker(t, append([]func(*broker.Config){func(c *broker.Config) {
		c.Listeners = []string{"CLIENT://127.0.0.1:0", "SASL://127.0.0.1:0"}
		c.ListenerSecurityProtocolMap = []string{"SASL:SASL_PLAINTEXT"}
	}}, opts...)...)
	return b, b.ListenerAddr("CLIENT"), b.ListenerAddr("SASL")
}

// tokenCreds sends a fixed session token.
type tokenCreds string

func (t tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}
func (tokenCreds) RequireTransportSecurity() bool { return false }

// login runs the SCRAM exchange by hand and returns the token, or the
// Authenticate error.
func login(t *testing.T, c v1.StrataClient, mech, user, password string) (*v1.AuthenticateResponse, error) {
	return loginTB(t, ctx(t), c, mech, user, password)
}

func loginB(b *testing.B, c v1.StrataClient, user, password string) (*v1.AuthenticateResponse, error) {
	return loginTB(b, context.Background(), c, client.ScramSHA256, user, password)
}

func loginTB(t testing.TB, ctx context.Context, c v1.StrataClient, mech, user, password string) (*v1.AuthenticateResponse, error) {
	t.Helper()
	hash := scram.SHA256
	if mech == client.ScramSHA512 {
		hash = scram.SHA512
	}
	sc, err := hash.NewClient(user, password, "")
	if err != nil {
		t.Fatal(err)
	}
	conv := sc.NewConversation()
	first, _ := conv.Step("")
	r1, err := c.Authenticate(ctx, &v1.AuthenticateRequest{Mechanism: mech, Message: []byte(first)})
	if err != nil {
		return nil, err
	}
	final, err := conv.Step(string(r1.Message))
	if err != nil {
		t.Fatal(err)
	}
	r2, err := c.Authenticate(ctx, &v1.AuthenticateRequest{Session: r1.Session, Message: []byte(final)})
	if err != nil {
		return nil, err
	}
	if _, err := conv.Step(string(r2.Message)); err != nil || !conv.Valid() {
		t.Fatalf("the broker's server-final does not verify: %v", err)
	}
	return r2, nil
}

// as is a client API connection that sends token.
func as(t *testing.T, addr, token string) v1.StrataClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(tokenCreds(token)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return v1.NewStrataClient(cc)
}

// addUser creates a user over the API (the broker must still let the
// caller do so).
func addUser(t *testing.T, c v1.StrataClient, mech, user, password string) {
	t.Helper()
	req, err := client.ScramCredential(user, mech, password, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpsertUser(ctx(t), req); err != nil {
		t.Fatalf("create user %s: %v", user, err)
	}
}

func wantStatus(t *testing.T, what string, err error, code codes.Code, text string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code || !strings.Contains(st.Message(), text) {
		t.Fatalf("%s: got %v, want %s containing %q", what, err, code, text)
	}
}

// TestSCRAMAuthentication: on a SASL listener, anonymous calls, wrong
// passwords and unknown users are refused with Unauthenticated and a
// message saying what to pass; right passwords (both mechanisms) get a
// token that works until it expires or its user is deleted; failures are
// counted.
func TestSCRAMAuthentication(t *testing.T) {
	b, plainAddr, saslAddr := saslBroker(t, func(c *broker.Config) {
		c.Authorizer = broker.AuthorizerNone // authentication alone here
		c.SASLSessionTTL = 2 * time.Second
	})
	plain := dial(t, plainAddr)
	addUser(t, plain, client.ScramSHA256, "alice", "alice-secret")
	addUser(t, plain, client.ScramSHA512, "bob", "bob-secret")
	if _, err := plain.Authenticate(ctx(t), &v1.AuthenticateRequest{Mechanism: client.ScramSHA256}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("Authenticate on a PLAINTEXT listener: %v", err)
	}
	anon := dial(t, saslAddr)

	_, err := anon.ListTopics(ctx(t), &v1.ListTopicsRequest{})
	wantStatus(t, "anonymous", err, codes.Unauthenticated, "pass --user and --password")
	_, err = as(t, saslAddr, "made-up").ListTopics(ctx(t), &v1.ListTopicsRequest{})
	wantStatus(t, "made-up token", err, codes.Unauthenticated, "authenticate again")

	_, err = login(t, anon, client.ScramSHA256, "alice", "wrong")
	wantStatus(t, "wrong password", err, codes.Unauthenticated, "authentication failed for user alice")
	_, err = login(t, anon, client.ScramSHA256, "mallory", "any")
	wantStatus(t, "unknown user", err, codes.Unauthenticated, "authentication failed for user mallory")
	_, err = login(t, anon, client.ScramSHA512, "alice", "alice-secret")
	wantStatus(t, "alice has no SCRAM-SHA-512 credential", err, codes.Unauthenticated, "authentication failed for user alice")
	_, err = anon.Authenticate(ctx(t), &v1.AuthenticateRequest{Mechanism: "PLAIN", Message: []byte("n,,n=alice,r=x")})
	wantStatus(t, "PLAIN", err, codes.InvalidArgument, "SCRAM-SHA-256 or SCRAM-SHA-512")

	for _, u := range []struct{ mech, user, pw string }{{client.ScramSHA256, "alice", "alice-secret"}, {client.ScramSHA512, "bob", "bob-secret"}} {
		r, err := login(t, anon, u.mech, u.user, u.pw)
		if err != nil {
			t.Fatalf("%s: %v", u.user, err)
		}
		if r.Principal != "User:"+u.user || r.TokenExpiryUnixMs <= time.Now().UnixMilli() {
			t.Fatalf("%s: principal %q, expiry %d", u.user, r.Principal, r.TokenExpiryUnixMs)
		}
		if _, err := as(t, saslAddr, r.Token).ListTopics(ctx(t), &v1.ListTopicsRequest{}); err != nil {
			t.Fatalf("%s with its token: %v", u.user, err)
		}
	}

	// A token stops working when it expires...
	r, err := login(t, anon, client.ScramSHA256, "alice", "alice-secret")
	if err != nil {
		t.Fatal(err)
	}
	alice := as(t, saslAddr, r.Token)
	eventually(t, "alice's token expires", func() bool {
		_, err := alice.ListTopics(ctx(t), &v1.ListTopicsRequest{})
		return status.Code(err) == codes.Unauthenticated
	})
	// ... and when its user is deleted.
	r, err = login(t, anon, client.ScramSHA512, "bob", "bob-secret")
	if err != nil {
		t.Fatal(err)
	}
	bob := as(t, saslAddr, r.Token)
	if _, err := bob.DeleteUser(ctx(t), &v1.DeleteUserRequest{Name: "bob"}); err != nil {
		t.Fatal(err)
	}
	_, err = bob.ListTopics(ctx(t), &v1.ListTopicsRequest{})
	wantStatus(t, "deleted user's token", err, codes.Unauthenticated, "authenticate again")

	body := httpGet(t, "http://"+b.HTTPAddr()+"/metrics")
	if !strings.Contains(body, "strata_authentication_failures_total 3") {
		t.Fatalf("metrics lack 3 authentication failures:\n%s", grepLines(body, "strata_authentication"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestClientSASLReauthenticates: the client library authenticates each
// connection by itself, and again when the broker forgets its token
// (a broker restart) or the token expires.
func TestClientSASLReauthenticates(t *testing.T) {
	b, plainAddr, saslAddr := saslBroker(t, func(c *broker.Config) {
		c.Authorizer = broker.AuthorizerNone
		c.SASLSessionTTL = time.Second
	})
	addUser(t, dial(t, plainAddr), client.ScramSHA512, "carol", "pw")

	c, err := client.New([]string{saslAddr}, client.SASL(client.ScramSHA512, "carol", "pw"), client.RetryTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Admin().CreateTopic(ctx(t), "t", 1, 1, nil); err != nil {
		t.Fatal(err)
	}
	produceN(t, c, "t", "a", 10)
	broker.ForgetSessions(b)
	produceN(t, c, "t", "b", 10)
	// The token's second passes; the client renews it before using it.
	deadline := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(deadline) {
		if _, err := c.Admin().ListTopics(ctx(t)); err != nil {
			t.Fatalf("across token expiry: %v", err)
		}
	}
	readAll(t, c, "t", 20)

	wrong, err := client.New([]string{saslAddr}, client.SASL(client.ScramSHA512, "carol", "nope"), client.RetryTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer wrong.Close()
	_, err = wrong.Admin().ListTopics(ctx(t))
	if !strings.Contains(err.Error(), "authentication failed for user carol") {
		t.Fatalf("wrong password through the client: %v", err)
	}
	_ = apierr.ErrAuthentication
}
