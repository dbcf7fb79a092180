package broker_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/internal/brokertest"
	"github.com/stratalog/strata/pkg/broker"
	"github.com/stratalog/strata/pkg/metadata"
	"github.com/stratalog/strata/pkg/record"
)

// FuzzHandlers feeds random requests through every gRPC method of a
// running in-process broker (client API and broker-to-broker service,
// unary and streaming), over a real connection. Each input picks a method
// and drives a generator that fills the method's request message field by
// field (protobuf reflection), with values chosen to hurt: names like
// "../x" and "__consumer_offsets", strings at and over their bounds,
// boundary integers, valid and broken record batches and metadata changes.
//
// Property: the broker never crashes, never answers INTERNAL (a recovered
// handler panic is a bug all the same), and still answers a Metadata call
// after every request.
func FuzzHandlers(f *testing.F) {
	cfg := brokertest.Config(f, 1)
	cfg.OffsetsPartitions = 1
	cfg.MaxFetchWait = 100 * time.Millisecond
	cfg.ProduceTimeout = 2 * time.Second
	// Not brokertest's logger: it logs through f, which the fuzz target
	// must not call. Errors (a recovered panic's stack) go to stderr.
	// (The discarding warn-level core lets the broker's sub-loggers raise
	// their level to warn.)
	enc := zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
	lg := zap.New(zapcore.NewTee(zapcore.NewCore(enc, zapcore.Lock(os.Stderr), zapcore.ErrorLevel),
		zapcore.NewCore(enc, zapcore.AddSync(io.Discard), zapcore.WarnLevel)))
	b, err := broker.New(cfg, lg)
	if err != nil {
		f.Fatal(err)
	}
	if err := b.Start(); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { b.Close() })
	brokertest.WaitReady(f, b)
	cc := grpcConn(f, b.APIAddr())
	// The broker-to-broker service is on the inter-broker listener only.
	icc := internalConn(f, b)
	c := v1.NewStrataClient(cc)
	setup, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.CreateTopic(setup, &v1.CreateTopicRequest{Name: "t", Partitions: 2}); err != nil {
		f.Fatal(err)
	}
	methods := fuzzMethods(f)
	for i := range methods {
		f.Add(uint8(i), []byte{})
		f.Add(uint8(i), []byte("\xff\x01\x02t\x00\x05\x07\x09\xff\xff\xff\xff"))
	}
	f.Fuzz(func(t *testing.T, pick uint8, data []byte) {
		m := methods[int(pick)%len(methods)]
		req := m.in.New()
		g := &gen{data: data}
		g.fill(req, 0)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		conn := cc
		if m.internal {
			conn = icc
		}
		err := m.call(ctx, conn, req.Interface())
		if status.Code(err) == codes.Internal {
			t.Fatalf("%s answered INTERNAL to %v: %v", m.name, req.Interface(), err)
		}
		actx, acancel := context.WithTimeout(context.Background(), 5*time.Second) // under the fuzzer's 10 s hang limit
		defer acancel()
		if _, err := c.Metadata(actx, &v1.MetadataRequest{}); err != nil {
			t.Fatalf("after %s %v, the broker no longer answers: %v", m.name, req.Interface(), err)
		}
	})
}

type fuzzMethod struct {
	name     string
	internal bool // StrataInternal: served on the inter-broker listener
	in       protoreflect.MessageType
	call     func(ctx context.Context, cc *grpc.ClientConn, req proto.Message) error
}

// fuzzMethods lists every method of both services, in a fixed order.
func fuzzMethods(tb testing.TB) []fuzzMethod {
	var out []fuzzMethod
	for _, svc := range []string{"Strata", "StrataInternal"} {
		sd := v1.File_strata_proto.Services().ByName(protoreflect.Name(svc))
		for i := 0; i < sd.Methods().Len(); i++ {
			md := sd.Methods().Get(i)
			in, err := protoregistry.GlobalTypes.FindMessageByName(md.Input().FullName())
			if err != nil {
				tb.Fatal(err)
			}
			outT, err := protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName())
			if err != nil {
				tb.Fatal(err)
			}
			full := fmt.Sprintf("/%s/%s", sd.FullName(), md.Name())
			m := fuzzMethod{name: full, in: in, internal: svc == "StrataInternal"}
			if md.IsStreamingServer() {
				m.call = func(ctx context.Context, cc *grpc.ClientConn, req proto.Message) error {
					st, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, full)
					if err != nil {
						return err
					}
					if err := st.SendMsg(req); err != nil {
						return err
					}
					if err := st.CloseSend(); err != nil {
						return err
					}
					for range 3 { // a few messages show the handler works; the context ends the rest
						if err := st.RecvMsg(outT.New().Interface()); err != nil {
							if errors.Is(err, io.EOF) {
								return nil
							}
							return err
						}
					}
					return nil
				}
			} else {
				m.call = func(ctx context.Context, cc *grpc.ClientConn, req proto.Message) error {
					return cc.Invoke(ctx, full, req, outT.New().Interface())
				}
			}
			out = append(out, m)
		}
	}
	return out
}

// gen turns fuzz bytes into field values; past the end of the data every
// choice is 0.
type gen struct{ data []byte }

func (g *gen) byte() byte {
	if len(g.data) == 0 {
		return 0
	}
	b := g.data[0]
	g.data = g.data[1:]
	return b
}

func (g *gen) uint64() uint64 {
	var b [8]byte
	for i := range b {
		b[i] = g.byte()
	}
	return binary.LittleEndian.Uint64(b[:])
}

var fuzzStrings = []string{
	"t", "", "g", "__consumer_offsets", "..", ".", "../../x", "a/b", "t\x00", "retention.ms", "message.timestamp.type",
	"LogAppendTime", "-1", "immutable", "true", "uniform", "range", ".*", "(a+)+$", "[", "1", "0/0",
	strings.Repeat("m", 255), strings.Repeat("m", 256), strings.Repeat("x", 1025), strings.Repeat("é", 300),
}

func (g *gen) int(bits int) int64 {
	switch g.byte() % 8 {
	case 0:
		return 0
	case 1:
		return 1
	case 2:
		return -1
	case 3:
		return int64(g.byte() % 4)
	case 4:
		return math.MaxInt64 >> (64 - bits)
	case 5:
		return math.MinInt64 >> (64 - bits)
	default:
		v := int64(g.uint64())
		return v << (64 - bits) >> (64 - bits)
	}
}

func (g *gen) string() string {
	if c := g.byte(); c < 200 {
		return fuzzStrings[int(c)%len(fuzzStrings)]
	}
	n := int(g.byte())
	var sb strings.Builder
	for range n {
		sb.WriteByte("ab._-/\\0~"[g.byte()%9])
	}
	return sb.String()
}

func (g *gen) bytes(fd protoreflect.FieldDescriptor) []byte {
	switch g.byte() % 4 {
	case 0:
		return nil
	case 1: // a valid batch, with a timestamp from anywhere
		ts := time.UnixMilli(int64(g.uint64()>>24) - 1<<38)
		if g.byte()%2 == 0 {
			ts = time.Now()
		}
		b, err := record.Encode([]record.Record{{Value: []byte("v"), Timestamp: ts}},
			record.EncodeOptions{Compression: record.Compression(g.byte() % 5), ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1})
		if err != nil {
			return nil
		}
		if g.byte()%4 == 0 && len(b) > 0 { // flip one byte
			b[int(g.byte())%len(b)] ^= g.byte() | 1
		}
		return b
	case 2: // a metadata change of some kind
		changes := []metadata.Change{
			metadata.CreateTopic{Topic: metadata.Topic{Name: g.string(), ID: g.string(), Partitions: int32(g.int(32)), ReplicationFactor: int32(g.int(32)),
				Assignments: []metadata.Assignment{{Replicas: []uint32{uint32(g.int(32))}}}}},
			metadata.DeleteTopic{Name: g.string()},
			metadata.Reassign{Topic: "t", Partition: int32(g.int(32)), Replicas: []uint32{uint32(g.byte() % 3)}},
			metadata.SetLeader{Topic: "t", TopicID: g.string(), Partition: int32(g.int(32)), Leader: uint32(g.byte() % 3), Term: g.uint64()},
			metadata.AlterTopicConfig{Name: g.string(), Set: map[string]string{g.string(): g.string()}},
			metadata.RegisterBroker{Broker: metadata.Broker{ID: uint32(g.byte() % 4), APIAddr: g.string(), RaftAddr: g.string()}},
		}
		b, _ := metadata.EncodeChange(changes[int(g.byte())%len(changes)])
		return b
	default:
		n := int(g.byte())
		b := make([]byte, n)
		for i := range b {
			b[i] = g.byte()
		}
		return b
	}
}

// fill sets m's fields from the generator, nested messages up to depth 3.
func (g *gen) fill(m protoreflect.Message, depth int) {
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if g.byte()%3 == 0 { // leave it unset
			continue
		}
		switch {
		case fd.IsList():
			l := m.Mutable(fd).List()
			for range int(g.byte() % 4) {
				if fd.Kind() == protoreflect.MessageKind {
					if depth < 3 {
						g.fill(l.AppendMutable().Message(), depth+1)
					}
					continue
				}
				l.Append(g.scalar(fd))
			}
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			for range int(g.byte() % 3) {
				mp.Set(protoreflect.ValueOfString(g.string()).MapKey(), g.scalar(fd.MapValue()))
			}
		case fd.Kind() == protoreflect.MessageKind:
			if depth < 3 {
				g.fill(m.Mutable(fd).Message(), depth+1)
			}
		default:
			m.Set(fd, g.scalar(fd))
		}
	}
}

func (g *gen) scalar(fd protoreflect.FieldDescriptor) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(g.byte()%2 == 1)
	case protoreflect.EnumKind:
		return protoreflect.ValueOfEnum(protoreflect.EnumNumber(g.int(32)))
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(g.int(32)))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(uint32(g.int(32)))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(g.int(64))
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(uint64(g.int(64)))
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(float32(g.int(32)))
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(float64(g.int(64)))
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(g.string())
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes(g.bytes(fd))
	}
	panic(fmt.Sprintf("fuzz: field kind %v", fd.Kind()))
}
