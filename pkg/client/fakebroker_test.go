package client

import (
	"context"
	"net"
	"sort"
	"sync"
	"testing"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/record"
	"google.golang.org/grpc"
)

// fakeBroker is an in-memory, single-node Strata server for testing the
// client's wire behaviour over real gRPC on loopback: it stores batches as
// sent, assigns offsets, long-polls fetches, and can be told to fail the
// next calls with a given code (to test retries). It is not the broker:
// the integration tests against internal/brokertest cover that.
type fakeBroker struct {
	v1.UnimplementedStrataServer
	addr string

	mu        sync.Mutex
	topics    map[string][]*fakePart
	fail      map[string][]*apierr.Error // RPC name -> errors to fail the next calls with
	calls     map[string]int
	immutable map[string]bool // topics that refuse DeleteRecords
	notify    chan struct{}   // closed and replaced on every produce
	host      string          // the host Metadata advertises; "" is 0.0.0.0
	groups    fakeGroups      // the group coordinator (fakegroup_test.go)
}

type fakePart struct {
	batches  [][]byte
	next     int64
	logStart int64
}

func startFake(t *testing.T) *fakeBroker {
	t.Helper()
	return startFakeWith(t)
}

// startFakeWith starts a fake broker whose gRPC server has opts (TLS
// credentials, for one).
func startFakeWith(t *testing.T, opts ...grpc.ServerOption) *fakeBroker {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeBroker{addr: lis.Addr().String(), topics: make(map[string][]*fakePart),
		fail: make(map[string][]*apierr.Error), calls: make(map[string]int), immutable: make(map[string]bool), notify: make(chan struct{})}
	s := grpc.NewServer(opts...)
	v1.RegisterStrataServer(s, f)
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(lis) }()
	t.Cleanup(func() { s.Stop(); <-done })
	return f
}

func (f *fakeBroker) failNext(rpc string, codes ...v1.ErrorCode) {
	for _, c := range codes {
		f.failNextWith(rpc, apierr.New(c, "injected %s", c))
	}
}

// failNextWith fails the next calls of rpc with errs, as whole-call
// errors (NOT_LEADER with a leader hint, for one).
func (f *fakeBroker) failNextWith(rpc string, errs ...*apierr.Error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[rpc] = append(f.fail[rpc], errs...)
}

func (f *fakeBroker) callCount(rpc string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[rpc]
}

// injected returns the injected error for rpc, if any. Caller holds mu.
func (f *fakeBroker) injected(rpc string) error {
	f.calls[rpc]++
	if errs := f.fail[rpc]; len(errs) > 0 {
		f.fail[rpc] = errs[1:]
		return apierr.ToStatus(errs[0])
	}
	return nil
}

func (f *fakeBroker) CreateTopic(_ context.Context, r *v1.CreateTopicRequest) (*v1.CreateTopicResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.injected("CreateTopic"); err != nil {
		return nil, err
	}
	if _, ok := f.topics[r.Name]; ok {
		return nil, apierr.ToStatus(apierr.New(v1.ErrorCode_ERROR_CODE_TOPIC_EXISTS, "topic %q already exists", r.Name))
	}
	if r.Partitions < 1 {
		return nil, apierr.ToStatus(apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_PARTITIONS, "partitions must be at least 1"))
	}
	ps := make([]*fakePart, r.Partitions)
	for i := range ps {
		ps[i] = &fakePart{}
	}
	f.topics[r.Name] = ps
	return &v1.CreateTopicResponse{Topic: f.describe(r.Name)}, nil
}

func (f *fakeBroker) DeleteTopic(_ context.Context, r *v1.DeleteTopicRequest) (*v1.DeleteTopicResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.topics[r.Name]; !ok {
		return nil, apierr.ToStatus(apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN_TOPIC, "topic %q does not exist", r.Name))
	}
	delete(f.topics, r.Name)
	return &v1.DeleteTopicResponse{}, nil
}

func (f *fakeBroker) ListTopics(context.Context, *v1.ListTopicsRequest) (*v1.ListTopicsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &v1.ListTopicsResponse{}
	for name, ps := range f.topics {
		resp.Topics = append(resp.Topics, &v1.TopicSummary{Name: name, Partitions: int32(len(ps)), ReplicationFactor: 1})
	}
	sort.Slice(resp.Topics, func(i, j int) bool { return resp.Topics[i].Name < resp.Topics[j].Name })
	return resp, nil
}

func (f *fakeBroker) DescribeTopic(_ context.Context, r *v1.DescribeTopicRequest) (*v1.DescribeTopicResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.topics[r.Name]; !ok {
		return nil, apierr.ToStatus(apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN_TOPIC, "topic %q does not exist", r.Name))
	}
	return &v1.DescribeTopicResponse{Topic: f.describe(r.Name)}, nil
}

func (f *fakeBroker) describe(name string) *v1.TopicDescription {
	d := &v1.TopicDescription{Name: name, ReplicationFactor: 1,
		Configs: []*v1.TopicConfigEntry{{Key: "retention.ms", Value: "604800000", IsDefault: true}}}
	for i, p := range f.topics[name] {
		d.Partitions = append(d.Partitions, &v1.PartitionDescription{Partition: int32(i), Leader: 1,
			Replicas: []uint32{1}, InSyncReplicas: []uint32{1}, HighWatermark: p.next, LogStartOffset: p.logStart, LogEndOffset: p.next})
	}
	return d
}

func (f *fakeBroker) Metadata(context.Context, *v1.MetadataRequest) (*v1.MetadataResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.injected("Metadata"); err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(f.addr)
	host := "0.0.0.0"
	if f.host != "" {
		host = f.host
	}
	resp := &v1.MetadataResponse{ClusterId: "fake", ControllerId: 1,
		Brokers: []*v1.BrokerInfo{{NodeId: 1, ApiAddr: net.JoinHostPort(host, port), State: "alive"}}}
	for name, ps := range f.topics {
		tm := &v1.TopicMetadata{Name: name}
		for i := range ps {
			tm.Partitions = append(tm.Partitions, &v1.PartitionMetadata{Partition: int32(i), Leader: 1, Replicas: []uint32{1}})
		}
		resp.Topics = append(resp.Topics, tm)
	}
	return resp, nil
}

func (f *fakeBroker) Produce(_ context.Context, r *v1.ProduceRequest) (*v1.ProduceResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.injected("Produce"); err != nil {
		return nil, err
	}
	ps, ok := f.topics[r.Topic]
	if !ok {
		return nil, apierr.ToStatus(apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN_TOPIC, "topic %q does not exist", r.Topic))
	}
	resp := &v1.ProduceResponse{}
	for _, pp := range r.Partitions {
		res := &v1.ProducePartitionResult{Partition: pp.Partition}
		resp.Partitions = append(resp.Partitions, res)
		if int(pp.Partition) >= len(ps) {
			res.Error = apierr.ToProto(apierr.ErrUnknownPartition)
			continue
		}
		p := ps[pp.Partition]
		res.BaseOffset = p.next
		for b := pp.Batches; len(b) > 0; {
			batch, h, rest, err := record.Next(b)
			if err == nil {
				_, err = record.Validate(batch, record.ValidateOptions{})
			}
			if err != nil {
				res.Error = apierr.ToProto(err)
				break
			}
			stored := append([]byte(nil), batch...)
			record.SetBaseOffset(stored, p.next)
			p.batches = append(p.batches, stored)
			p.next += int64(h.LastOffsetDelta) + 1
			b = rest
		}
		res.LastOffset = p.next - 1
	}
	close(f.notify)
	f.notify = make(chan struct{})
	return resp, nil
}

func (f *fakeBroker) Fetch(ctx context.Context, r *v1.FetchRequest) (*v1.FetchResponse, error) {
	deadline := time.NewTimer(time.Duration(r.MaxWaitMs) * time.Millisecond)
	defer deadline.Stop()
	for {
		f.mu.Lock()
		if err := f.injected("Fetch"); err != nil {
			f.mu.Unlock()
			return nil, err
		}
		resp, n := f.fetchLocked(r)
		wait := f.notify
		f.mu.Unlock()
		if n > 0 {
			return resp, nil
		}
		select {
		case <-wait:
		case <-deadline.C:
			return resp, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (f *fakeBroker) fetchLocked(r *v1.FetchRequest) (*v1.FetchResponse, int) {
	resp := &v1.FetchResponse{}
	total := 0
	for _, fp := range r.Partitions {
		res := &v1.FetchPartitionResult{Topic: fp.Topic, Partition: fp.Partition}
		resp.Partitions = append(resp.Partitions, res)
		ps, ok := f.topics[fp.Topic]
		if !ok || int(fp.Partition) >= len(ps) {
			res.Error = apierr.ToProto(apierr.ErrUnknownPartition)
			continue
		}
		p := ps[fp.Partition]
		res.HighWatermark, res.LogStartOffset = p.next, p.logStart
		if fp.Offset < p.logStart || fp.Offset > p.next {
			res.Error = apierr.ToProto(&apierr.Error{Code: v1.ErrorCode_ERROR_CODE_OFFSET_OUT_OF_RANGE, LogStartOffset: p.logStart, HighWatermark: p.next})
			total++
			continue
		}
		for _, b := range p.batches {
			h, _ := record.ParseHeader(b)
			if h.LastOffset() < fp.Offset {
				continue
			}
			res.Batches = append(res.Batches, b...)
			if len(res.Batches) >= int(fp.MaxBytes) {
				break
			}
		}
		total += len(res.Batches)
	}
	return resp, total
}

func (f *fakeBroker) ListOffsets(_ context.Context, r *v1.ListOffsetsRequest) (*v1.ListOffsetsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.injected("ListOffsets"); err != nil {
		return nil, err
	}
	resp := &v1.ListOffsetsResponse{}
	for _, lp := range r.Partitions {
		res := &v1.ListOffsetsPartitionResult{Topic: lp.Topic, Partition: lp.Partition}
		resp.Partitions = append(resp.Partitions, res)
		ps, ok := f.topics[lp.Topic]
		if !ok || int(lp.Partition) >= len(ps) {
			res.Error = apierr.ToProto(apierr.ErrUnknownPartition)
			continue
		}
		p := ps[lp.Partition]
		switch lp.Spec {
		case v1.OffsetSpec_OFFSET_SPEC_EARLIEST:
			res.Offset, res.Found = p.logStart, true
		case v1.OffsetSpec_OFFSET_SPEC_LATEST:
			res.Offset, res.Found = p.next, true
		case v1.OffsetSpec_OFFSET_SPEC_TIMESTAMP:
			res.Offset = p.next
		search:
			for _, b := range p.batches {
				recs, _ := record.Decode(b, record.DecodeOptions{})
				for _, rec := range recs {
					if rec.Timestamp.UnixMilli() >= lp.TimestampMs {
						res.Offset, res.TimestampMs, res.Found = rec.Offset, rec.Timestamp.UnixMilli(), true
						break search
					}
				}
			}
		}
	}
	return resp, nil
}

// truncateFront drops every batch below offset, as retention would.
func (f *fakeBroker) truncateFront(topic string, partition int32, offset int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.truncateFrontLocked(f.topics[topic][partition], offset)
}

func (f *fakeBroker) truncateFrontLocked(p *fakePart, offset int64) {
	for len(p.batches) > 0 {
		h, _ := record.ParseHeader(p.batches[0])
		if h.NextOffset() > offset {
			break
		}
		p.batches = p.batches[1:]
	}
	p.logStart = max(p.logStart, offset)
}

// DeleteRecords moves log starts forward like the broker: -1 means the
// high watermark, an offset past it is OFFSET_OUT_OF_RANGE, and topics
// marked immutable refuse with POLICY_VIOLATION per partition.
func (f *fakeBroker) DeleteRecords(_ context.Context, r *v1.DeleteRecordsRequest) (*v1.DeleteRecordsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.injected("DeleteRecords"); err != nil {
		return nil, err
	}
	ps, ok := f.topics[r.Topic]
	if !ok {
		return nil, apierr.ToStatus(apierr.New(v1.ErrorCode_ERROR_CODE_UNKNOWN_TOPIC, "topic %q does not exist", r.Topic))
	}
	resp := &v1.DeleteRecordsResponse{}
	for _, dp := range r.Partitions {
		res := &v1.DeleteRecordsPartitionResult{Partition: dp.Partition}
		resp.Partitions = append(resp.Partitions, res)
		switch {
		case int(dp.Partition) >= len(ps):
			res.Error = apierr.ToProto(apierr.ErrUnknownPartition)
		case f.immutable[r.Topic]:
			res.Error = apierr.ToProto(apierr.New(v1.ErrorCode_ERROR_CODE_POLICY_VIOLATION, "topic %q is immutable", r.Topic))
		default:
			p := ps[dp.Partition]
			to := dp.BeforeOffset
			if to == -1 {
				to = p.next
			}
			if to > p.next {
				res.Error = apierr.ToProto(&apierr.Error{Code: v1.ErrorCode_ERROR_CODE_OFFSET_OUT_OF_RANGE,
					Message: "past the high watermark", LogStartOffset: p.logStart, HighWatermark: p.next})
				continue
			}
			f.truncateFrontLocked(p, to)
			res.LogStartOffset = p.logStart
		}
	}
	return resp, nil
}

func (f *fakeBroker) setImmutable(topic string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.immutable[topic] = true
}
