package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/metadata"
	"github.com/stratalog/strata/pkg/replication"
	"github.com/stratalog/strata/pkg/segment"
)

// readLogChunkBytes sizes the chunks of a ReadLog stream.
const readLogChunkBytes = 1 << 20

// copyThrottle paces the ReadLog streams of one broker to
// --log-copy-rate, all together, and counts what they serve.
type copyThrottle struct {
	limit  *rate.Limiter // nil: unlimited
	served prometheus.Counter
}

func newCopyThrottle(bytesPerSecond int64, reg prometheus.Registerer) *copyThrottle {
	t := &copyThrottle{served: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "strata_log_copy_served_bytes_total",
		Help: "Bytes of partition logs this broker served to replicas copying them for a snapshot install.",
	})}
	if bytesPerSecond > 0 {
		t.limit = rate.NewLimiter(rate.Limit(bytesPerSecond), copyBurst)
	}
	reg.MustRegister(t.served)
	return t
}

// copyBurst is the throttle's bucket: a chunk larger than this waits for
// it piece by piece.
const copyBurst = readLogChunkBytes

// wait blocks until n more bytes may be served, then counts them.
func (t *copyThrottle) wait(ctx context.Context, n int) error {
	for left := n; t.limit != nil && left > 0; left -= copyBurst {
		if err := t.limit.WaitN(ctx, min(left, copyBurst)); err != nil {
			return err
		}
	}
	t.served.Add(float64(n))
	return nil
}

// ReadLog streams this broker's copy of a partition's log, from
// req.FromIndex (or its first stored entry) to its commit index, to a
// replica that copies it for a snapshot install (see
// replication.Group.ServeLog). The copy resumes with a later FromIndex
// after an interruption.
//
// Errors: NOT_LEADER when this broker holds no replica of the group;
// STORAGE when the log cannot be read.
func (b *Broker) ReadLog(req *v1.ReadLogRequest, stream v1.StrataInternal_ReadLogServer) error {
	part, ok := b.replicas.get(req.Group)
	if !ok {
		return apierr.ToStatus(&apierr.Error{Code: v1.ErrorCode_ERROR_CODE_NOT_LEADER,
			Message: fmt.Sprintf("broker %d holds no replica of group %s", b.cfg.NodeID, req.Group)})
	}
	first := true
	err := part.Group().ServeLog(stream.Context(), req.FromIndex, readLogChunkBytes, func(c replication.LogChunk) error {
		m := &v1.ReadLogChunk{Entries: make([]*v1.LogEntry, len(c.Entries))}
		if first {
			m.LogStartOffset, m.BaseOffset, m.TotalBytes, first = c.LogStart, c.BaseOffset, c.TotalBytes, false
		}
		n := 0
		for i, e := range c.Entries {
			m.Entries[i] = &v1.LogEntry{Index: e.Index, Term: e.Term, Type: uint32(e.Type), Data: e.Data}
			n += len(e.Data)
		}
		if err := b.logCopy.wait(stream.Context(), n); err != nil {
			return err
		}
		return stream.Send(m)
	})
	if err != nil {
		return apierr.ToStatus(apierr.New(v1.ErrorCode_ERROR_CODE_STORAGE, "read log of %s: %v", req.Group, err))
	}
	return nil
}

// logSource fetches a partition's log from another broker for a snapshot
// install (replication.LogSource).
type logSource struct{ b *Broker }

func (s logSource) ReadLog(ctx context.Context, peer raft.ServerID, group string, from uint64, fn func(replication.LogChunk) error) error {
	id, err := strconv.ParseUint(string(peer), 10, 32)
	if err != nil {
		return fmt.Errorf("peer %q is not a broker id", peer)
	}
	c, err := s.b.internalClient(metadata.NodeID(id))
	if err != nil {
		return err
	}
	stream, err := c.ReadLog(ctx, &v1.ReadLogRequest{Group: group, FromIndex: from})
	if err != nil {
		return err
	}
	first := true
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			if first {
				return fmt.Errorf("broker %d sent an empty log", id)
			}
			return nil
		}
		if err != nil {
			return apierr.FromStatus(err)
		}
		chunk := replication.LogChunk{LogStart: m.LogStartOffset, BaseOffset: -1, Entries: make([]segment.Entry, len(m.Entries))}
		if first {
			chunk.BaseOffset, chunk.TotalBytes, first = m.BaseOffset, m.TotalBytes, false
		}
		for i, e := range m.Entries {
			chunk.Entries[i] = segment.Entry{Index: e.Index, Term: e.Term, Type: segment.EntryType(e.Type), Data: e.Data}
		}
		if err := fn(chunk); err != nil {
			return err
		}
	}
}
