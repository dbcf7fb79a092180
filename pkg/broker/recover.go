package broker

import (
	"context"
	"fmt"
	"path"
	"runtime/debug"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// A panic in a gRPC handler must not reach the client as a dropped
// connection, nor kill the broker: grpc-go does not recover handler
// panics, so one bad request would take down every partition the broker
// leads. The recovering interceptors turn a panic into an INTERNAL status
// ("internal error", no details: the stack is for the operator, not the
// caller), log it at error level with the method, a short description of
// the request and the stack, and count it in
// strata_handler_panics_total{method}.
//
// They are the outermost interceptors of the chain, so a panic in any
// interceptor added later (authentication, ACLs) is recovered too. A
// panic in a goroutine a handler starts is not theirs to recover: such
// goroutines recover themselves (produce.go).
//
// Recovering is safe because a panic is a bug in request handling, not a
// broken invariant of the stored state: the partition and metadata layers
// commit through Raft, and a handler that panics halfway leaves at worst a
// request unanswered.

// recoverer holds the panic counter and a test-only hook.
type recoverer struct {
	log    *zap.Logger
	panics *prometheus.CounterVec
	// hook, when set (tests only, export_test.go), runs before every
	// handler with the method's full name.
	hook atomic.Pointer[func(method string)]
}

func newRecoverer(log *zap.Logger, reg prometheus.Registerer) *recoverer {
	r := &recoverer{
		log: log,
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_handler_panics_total", Help: "gRPC handler panics recovered (the request got INTERNAL), by method.",
		}, []string{"method"}),
	}
	reg.MustRegister(r.panics)
	return r
}

// maxRequestDescription bounds the request text in the panic log line.
const maxRequestDescription = 256

// recovered turns a recovered panic value into the status the client gets.
func (r *recoverer) recovered(method string, req any, p any) error {
	r.panics.WithLabelValues(path.Base(method)).Inc()
	r.log.Error("handler panicked; the request got INTERNAL and the broker goes on",
		zap.String("method", method), zap.String("request", describeRequest(req)),
		zap.String("panic", fmt.Sprint(p)), zap.ByteString("stack", debug.Stack()))
	return status.Error(codes.Internal, "internal error in "+path.Base(method)+" (logged by the broker)")
}

func (r *recoverer) runHook(method string) {
	if h := r.hook.Load(); h != nil {
		(*h)(method)
	}
}

func (r *recoverer) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if p := recover(); p != nil {
			resp, err = nil, r.recovered(info.FullMethod, req, p)
		}
	}()
	r.runHook(info.FullMethod)
	return h(ctx, req)
}

func (r *recoverer) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = r.recovered(info.FullMethod, nil, p)
		}
	}()
	r.runHook(info.FullMethod)
	return h(srv, ss)
}

// catch runs f on a goroutine a handler started, where the interceptors
// cannot reach: a panic is logged and counted as theirs are, and returned
// as an error.
func (r *recoverer) catch(method string, req any, f func()) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = r.recovered(method, req, p)
		}
	}()
	f()
	return nil
}

// describeRequest is a request's type and its first fields, as text.
func describeRequest(req any) string {
	m, ok := req.(proto.Message)
	if !ok {
		return fmt.Sprintf("%T", req)
	}
	s := string(m.ProtoReflect().Descriptor().Name()) + "{" + prototext.MarshalOptions{}.Format(m) + "}"
	if len(s) > maxRequestDescription {
		s = s[:maxRequestDescription] + "..."
	}
	return s
}
