package broker

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/metadata"
)

// Every string and list in every request has a bound, checked before the
// handler runs, so that no request can make a handler keep, compile, log
// or copy something huge (a 60 MiB member id held by a group for its
// session, a 1 MB regex compiled on every heartbeat). gRPC already bounds
// the whole message (--max-request-bytes); these bounds are per field.
// An oversized field is refused with INVALID_REQUEST naming the field and
// its limit.
//
// The check walks the request with protobuf reflection, so a field added
// to the API is bounded by the defaults without anyone remembering to.
// Topic names get a loose bound here (1024): the handlers apply Kafka's
// 249-character rule and answer INVALID_TOPIC, which says more.
const (
	defaultMaxString = 1024
	defaultMaxList   = 100_000
)

// stringBounds are the fields whose bound is not defaultMaxString, by
// field name (the same name means the same thing in every message).
var stringBounds = map[protoreflect.Name]int{
	"group":       255, // consumer group ids and Raft group names
	"member_id":   255,
	"instance_id": 255,
	"client_id":   255,
	"assignor":    64,
	"topic_regex": 1024,
	"metadata":    4096, // offset commit metadata, as Kafka's offset.metadata.max.bytes
}

// listBounds are the repeated and map fields whose bound is not
// defaultMaxList, by field name.
var listBounds = map[protoreflect.Name]int{
	"topics":   10_000, // a subscription or a metadata request
	"replicas": metadata.MaxReplicas,
	"delete":   metadata.MaxConfigEntries,
	"set":      metadata.MaxConfigEntries,
	"configs":  metadata.MaxConfigEntries,
	"members":  metadata.MaxReplicas,
	"acls":     metadata.MaxACLsPerChange,
}

// bytesBounds are the bytes fields that have a bound.
var bytesBounds = map[protoreflect.Name]int{
	"change": 1 << 20, // one metadata change (ApplyMetadata)
	// SCRAM messages and credentials (Authenticate, UpsertUser).
	"message":    4096,
	"salt":       metadata.MaxSaltLen,
	"stored_key": 64,
	"server_key": 64,
}

// checkBounds returns an INVALID_REQUEST error naming the first field of m
// over its bound, nil if there is none.
func checkBounds(m proto.Message) error {
	if m == nil {
		return nil
	}
	return walkBounds(m.ProtoReflect(), string(m.ProtoReflect().Descriptor().Name()))
}

func walkBounds(m protoreflect.Message, at string) (err error) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := at + "." + string(fd.Name())
		switch {
		case fd.IsList():
			l := v.List()
			if max := listBound(fd); l.Len() > max {
				err = tooLong(name, "entries", l.Len(), max)
				return false
			}
			for i := 0; i < l.Len() && err == nil; i++ {
				err = checkValue(fd, l.Get(i), fmt.Sprintf("%s[%d]", name, i))
			}
		case fd.IsMap():
			mp := v.Map()
			if max := listBound(fd); mp.Len() > max {
				err = tooLong(name, "entries", mp.Len(), max)
				return false
			}
			mp.Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				if s, ok := k.Interface().(string); ok && len(s) > 256 {
					err = tooLong(name+" key", "bytes", len(s), 256)
					return false
				}
				err = checkValue(fd.MapValue(), mv, fmt.Sprintf("%s[%v]", name, k.Interface()))
				return err == nil
			})
		default:
			err = checkValue(fd, v, name)
		}
		return err == nil
	})
	return err
}

func checkValue(fd protoreflect.FieldDescriptor, v protoreflect.Value, name string) error {
	switch fd.Kind() {
	case protoreflect.StringKind:
		max, ok := stringBounds[fd.Name()]
		if !ok {
			max = defaultMaxString
		}
		if n := len(v.String()); n > max {
			return tooLong(name, "bytes", n, max)
		}
	case protoreflect.BytesKind:
		if max, ok := bytesBounds[fd.Name()]; ok && len(v.Bytes()) > max {
			return tooLong(name, "bytes", len(v.Bytes()), max)
		}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return walkBounds(v.Message(), name)
	}
	return nil
}

func listBound(fd protoreflect.FieldDescriptor) int {
	if max, ok := listBounds[fd.Name()]; ok {
		return max
	}
	return defaultMaxList
}

func tooLong(field, unit string, n, max int) error {
	return apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_REQUEST, "request field %s has %d %s; the limit is %d", field, n, unit, max)
}

// boundsUnary refuses a unary request with a field over its bound.
func boundsUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if m, ok := req.(proto.Message); ok {
		if err := checkBounds(m); err != nil {
			return nil, apierr.ToStatus(err)
		}
	}
	return h(ctx, req)
}

// boundsStream checks each message a stream handler receives.
func boundsStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	return h(srv, boundedStream{ss})
}

type boundedStream struct{ grpc.ServerStream }

func (s boundedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if pm, ok := m.(proto.Message); ok {
		if err := checkBounds(pm); err != nil {
			return apierr.ToStatus(err)
		}
	}
	return nil
}
