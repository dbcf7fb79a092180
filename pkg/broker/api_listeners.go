package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	v1 "github.com/stratalog/strata/api/v1"

	"github.com/stratalog/strata/pkg/tlsconfig"
)

// apiServer is one client listener being served: its socket and its own
// gRPC server, whose interceptors put the listener in every request's
// context first (withListener), so that everything after, authentication
// included, knows which listener a request came in on.
type apiServer struct {
	l   *listener
	ln  net.Listener
	srv *grpc.Server
}

// listenAPI binds every client listener (Config.listeners) and fills in
// the advertised addresses that were not given.
func (b *Broker) listenAPI() error {
	ls, err := b.cfg.listeners()
	if err != nil {
		return err
	}
	for i := range ls {
		l := &ls[i]
		ln, err := net.Listen("tcp", l.Addr)
		if err != nil {
			flag := "--listeners " + l.Name
			if len(b.cfg.Listeners) == 0 {
				flag = "--api-addr"
			}
			return fmt.Errorf("listen on %s %s: %w", flag, l.Addr, err)
		}
		if l.Advertised == "" {
			l.Advertised = b.cfg.advertise(ln.Addr().String())
		}
		b.api = append(b.api, &apiServer{l: l, ln: ln})
	}
	return nil
}

// advertisedListeners maps each listener's name to its advertised address,
// as gossip and the metadata carry them.
func (b *Broker) advertisedListeners() map[string]string {
	m := make(map[string]string, len(b.api))
	for _, s := range b.api {
		m[s.l.Name] = s.l.Advertised
	}
	return m
}

// serveAPI makes each listener's gRPC server (newGRPCServer, with TLS on
// SSL and SASL_SSL listeners) and serves it until Close.
func (b *Broker) serveAPI() error {
	var tlsCfg *tls.Config
	for _, s := range b.api {
		var opts []grpc.ServerOption
		if s.l.TLS() {
			if tlsCfg == nil {
				auth, err := tlsconfig.ParseClientAuth(b.cfg.TLSClientAuth)
				if err != nil {
					return fmt.Errorf("--tls-client-auth: %v", err)
				}
				if tlsCfg, err = b.tlsFiles().Server(auth); err != nil {
					return err
				}
			}
			opts = append(opts, grpc.Creds(credentials.NewTLS(tlsCfg)))
		}
		s.srv = b.newGRPCServer(s.l, opts...)
	}
	for _, s := range b.api {
		b.goLoop(func() {
			if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				b.log.Error("api listener stopped", zap.String("listener", s.l.Name), zap.Error(err))
			}
		})
	}
	return nil
}

// tlsFiles are the broker's TLS files; a changed file that does not load
// is logged and the previous certificate kept.
func (b *Broker) tlsFiles() tlsconfig.Files {
	return tlsconfig.Files{Cert: b.cfg.TLSCert, Key: b.cfg.TLSKey, CA: b.cfg.TLSCA, OnError: func(err error) {
		b.log.Warn("reloading the TLS files failed; the previous certificate stays in use", zap.Error(err))
	}}
}

// stopAPI stops every listener's server, letting in-flight calls finish
// within ShutdownTimeout, then cutting them.
func (b *Broker) stopAPI() {
	var wg sync.WaitGroup
	deadline := time.After(b.cfg.ShutdownTimeout)
	stop := make(chan struct{})
	for _, s := range b.api {
		if s.srv == nil {
			s.ln.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := make(chan struct{})
			go func() { s.srv.GracefulStop(); close(done) }()
			select {
			case <-done:
			case <-stop:
				s.srv.Stop()
				<-done
			}
		}()
	}
	all := make(chan struct{})
	go func() { wg.Wait(); close(all) }()
	select {
	case <-all:
	case <-deadline:
		close(stop)
		<-all
	}
}

// listenerUnary and listenerStream put the listener into each request's
// context; they come first in every chain. On the way out, the unary one
// turns the leader addresses of NOT_LEADER and NOT_COORDINATOR errors
// (which handlers fill with brokers' primary, CLIENT, addresses) into
// the listener's (rewriteLeaderAddrs).
func (b *Broker) listenerUnary(l *listener) grpc.UnaryServerInterceptor {
	// A broker whose only listener is CLIENT, the primary of every broker
	// that has one, has nothing to rewrite.
	rewrite := len(b.api) > 1 || l.Name != DefaultListenerName
	addr := func(id uint32) string {
		a, _ := b.listenerAddrOf(withListener(context.Background(), l), id)
		return a
	}
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		resp, err := h(withListener(ctx, l), req)
		if !rewrite {
			return resp, err
		}
		if m, ok := resp.(proto.Message); ok && m != nil {
			rewriteLeaderAddrs(m.ProtoReflect(), addr)
		}
		return resp, rewriteStatusLeaderAddr(err, addr)
	}
}

// listenerAddrOf is broker id's advertised address on the listener the
// request came in on, and whether it has that listener.
func (b *Broker) listenerAddrOf(ctx context.Context, id uint32) (string, bool) {
	br, ok := b.meta.Broker(id)
	if !ok {
		return "", false
	}
	return br.ListenerAddr(b.clientListener(ctx))
}

// rewriteLeaderAddrs sets the leader_addr of every Error in m that names a
// leader to addr(leader_id) (empty when that broker has no such listener:
// the client then looks the leader up in its metadata).
func rewriteLeaderAddrs(m protoreflect.Message, addr func(uint32) string) {
	if !m.IsValid() {
		return
	}
	if e, ok := m.Interface().(*v1.Error); ok {
		if e.LeaderId != 0 {
			e.LeaderAddr = addr(e.LeaderId)
		}
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			if fd.MapValue().Kind() == protoreflect.MessageKind {
				v.Map().Range(func(_ protoreflect.MapKey, v protoreflect.Value) bool {
					rewriteLeaderAddrs(v.Message(), addr)
					return true
				})
			}
		case fd.Kind() != protoreflect.MessageKind:
		case fd.IsList():
			for i, l := 0, v.List(); i < l.Len(); i++ {
				rewriteLeaderAddrs(l.Get(i).Message(), addr)
			}
		default:
			rewriteLeaderAddrs(v.Message(), addr)
		}
		return true
	})
}

// rewriteStatusLeaderAddr is rewriteLeaderAddrs for a call's error.
func rewriteStatusLeaderAddr(err error, addr func(uint32) string) error {
	st, ok := status.FromError(err)
	if err == nil || !ok {
		return err
	}
	for _, d := range st.Details() {
		if e, ok := d.(*v1.Error); ok && e.LeaderId != 0 {
			e.LeaderAddr = addr(e.LeaderId)
			if st2, derr := status.New(st.Code(), st.Message()).WithDetails(e); derr == nil {
				return st2.Err()
			}
		}
	}
	return err
}

func listenerStream(l *listener) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		return h(srv, &listenerServerStream{ss, withListener(ss.Context(), l)})
	}
}

type listenerServerStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *listenerServerStream) Context() context.Context { return s.ctx }

// clientListener is the name of the listener whose addresses a request is
// answered with: the one it came in on, or for an in-process call (no
// listener in its context) this broker's first.
func (b *Broker) clientListener(ctx context.Context) string {
	if l, ok := ctx.Value(listenerKey{}).(*listener); ok {
		return l.Name
	}
	if len(b.api) > 0 {
		return b.api[0].l.Name
	}
	return DefaultListenerName
}

// ListenerAddr is the bound address of the named listener ("" if none).
func (b *Broker) ListenerAddr(name string) string {
	for _, s := range b.api {
		if s.l.Name == name {
			return s.ln.Addr().String()
		}
	}
	return ""
}

// Listeners describes the client listeners for a start-up line:
// "NAME://bound (PROTOCOL, advertised host:port)" each.
func (b *Broker) Listeners() []string {
	out := make([]string, len(b.api))
	for i, s := range b.api {
		out[i] = fmt.Sprintf("%s://%s (%s, advertised %s)", s.l.Name, s.ln.Addr(), s.l.Protocol, s.l.Advertised)
	}
	return out
}

// httpTLS puts TLS on the HTTP listener with --http-tls. It asks for no
// client certificate: nothing on it (metrics, health) is authorised by
// one, and probes and scrapers rarely have one.
func (b *Broker) httpTLS() error {
	if !b.cfg.HTTPTLS {
		return nil
	}
	cfg, err := b.tlsFiles().Server(tlsconfig.NoClientCert)
	if err != nil {
		return fmt.Errorf("--http-tls: %w", err)
	}
	b.httpLn = tls.NewListener(b.httpLn, cfg)
	// Failed handshakes (a plain HTTP request, an untrusted client) go
	// to the broker's log rather than stderr.
	b.http.ErrorLog = zap.NewStdLog(b.log.Named("http"))
	return nil
}
