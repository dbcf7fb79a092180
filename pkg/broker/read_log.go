package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/hashicorp/raft"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/metadata"
	"github.com/stratalog/strata/pkg/replication"
	"github.com/stratalog/strata/pkg/segment"
)

// readLogChunkBytes sizes the chunks of a ReadLog stream.
const readLogChunkBytes = 1 << 20

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
		for i, e := range c.Entries {
			m.Entries[i] = &v1.LogEntry{Index: e.Index, Term: e.Term, Type: uint32(e.Type), Data: e.Data}
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
