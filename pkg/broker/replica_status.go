package broker

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/metadata"
)

// ReplicaStatus (internal) reports the progress of this broker's partition
// replicas: role, term, Raft indexes and offsets. It cannot fail; groups not
// on this broker are left out.
func (b *Broker) ReplicaStatus(ctx context.Context, req *v1.ReplicaStatusRequest) (*v1.ReplicaStatusResponse, error) {
	resp := &v1.ReplicaStatusResponse{}
	add := func(group string) {
		p, ok := b.replicas.get(group)
		if !ok {
			return
		}
		st := p.Group().Status()
		var leader uint32
		fmt.Sscan(string(st.LeaderID), &leader)
		contact := int64(0)
		if st.State != raft.Leader {
			contact = -1
			if !st.LastContact.IsZero() {
				contact = time.Since(st.LastContact).Milliseconds()
			}
		}
		resp.Replicas = append(resp.Replicas, &v1.ReplicaState{
			Group: group, Topic: p.Topic(), Partition: p.ID(), NodeId: b.cfg.NodeID,
			Role: roleName(st.State.String()), Term: st.Term, Leader: leader,
			LastIndex: st.LastIndex, CommitIndex: st.CommitIndex,
			HighWatermark: st.HighWatermark, LogEndOffset: st.LogEndOffset, LogStartOffset: st.LogStartOffset,
			SnapshotInstalls: st.SnapshotInstalls,
			CopyBytes:        st.Copy.StagedBytes, CopyTotalBytes: st.Copy.TotalBytes,
			CopyIndex: st.Copy.StagedIndex, CopyTargetIndex: st.Copy.TargetIndex, Copying: st.Copy.Running,
			SizeBytes: st.LogSizeBytes, CopyServedBytes: st.ServedCopyBytes, LastContactMs: contact,
			AbstainUntil: st.AbstainUntil,
		})
	}
	if len(req.Groups) == 0 {
		for _, p := range b.replicas.all() {
			add(p.GroupName())
		}
	}
	for _, g := range req.Groups {
		add(g)
	}
	return resp, nil
}

func roleName(s string) string {
	switch s {
	case "Leader":
		return "leader"
	case "Follower":
		return "follower"
	case "Candidate":
		return "candidate"
	}
	return "shutdown"
}

// statusTimeout bounds how long describe waits for another broker.
const statusTimeout = 2 * time.Second

// replicaStates asks every broker holding a replica of t for its replicas'
// state, in parallel. A broker that does not answer in time is missing
// from the result (its replicas count as out of sync).
func (b *Broker) replicaStates(ctx context.Context, t metadata.Topic) map[string]map[metadata.NodeID]*v1.ReplicaState {
	groups := map[metadata.NodeID][]string{}
	for p, a := range t.Assignments {
		for _, r := range a.Replicas {
			groups[r] = append(groups[r], t.GroupName(int32(p)))
		}
	}
	out := map[string]map[metadata.NodeID]*v1.ReplicaState{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	for id, gs := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var resp *v1.ReplicaStatusResponse
			var err error
			if id == b.cfg.NodeID {
				resp, err = b.ReplicaStatus(ctx, &v1.ReplicaStatusRequest{Groups: gs})
			} else if ic, ierr := b.internalClient(id); ierr == nil {
				resp, err = ic.ReplicaStatus(ctx, &v1.ReplicaStatusRequest{Groups: gs})
			} else {
				err = ierr
			}
			if err != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, st := range resp.Replicas {
				if out[st.Group] == nil {
					out[st.Group] = map[metadata.NodeID]*v1.ReplicaState{}
				}
				out[st.Group][id] = st
			}
		}()
	}
	wg.Wait()
	return out
}

// partitionView is one partition as describe reports it.
type partitionView struct {
	leader          metadata.NodeID
	isr             []metadata.NodeID
	hwm, start, end int64
	lagging         []*v1.ReplicaLag // the replicas not in sync (only when a leader answered)
}

// viewPartition combines the metadata with the replicas' states: the
// leader is the replica that says it leads (in the highest term); a
// replica is in sync when it has every record the leader has committed.
func viewPartition(a metadata.Assignment, states map[metadata.NodeID]*v1.ReplicaState) partitionView {
	v := partitionView{leader: a.Leader}
	var lead *v1.ReplicaState
	for _, st := range states {
		if st.Role == "leader" && (lead == nil || st.Term > lead.Term) {
			lead = st
		}
	}
	if lead == nil {
		// No replica answered as leader: trust the metadata's last news
		// only if that broker is not known to follow someone else.
		if st, ok := states[a.Leader]; !ok || st.Role != "leader" {
			v.leader = 0
		}
		return v
	}
	v.leader = lead.NodeId
	v.hwm, v.start, v.end = lead.HighWatermark, lead.LogStartOffset, lead.LogEndOffset
	for _, r := range a.Replicas {
		st, ok := states[r]
		if ok && (r == v.leader || st.LogEndOffset >= lead.HighWatermark && st.Term == lead.Term) {
			v.isr = append(v.isr, r)
			continue
		}
		v.lagging = append(v.lagging, replicaLag(r, lead, st))
	}
	slices.Sort(v.isr)
	return v
}

// replicaLag says how far st (nil: its broker did not answer) is behind
// the leader lead. Bytes behind are estimated from the leader's average
// bytes per offset; a replica copying the leader's log for a snapshot
// install reports the copy's own progress too.
func replicaLag(node metadata.NodeID, lead, st *v1.ReplicaState) *v1.ReplicaLag {
	l := &v1.ReplicaLag{NodeId: node}
	if st == nil {
		return l
	}
	l.Answered = true
	l.AbstainUntil = st.AbstainUntil
	// Offsets below the leader's log start are gone: they are not owed.
	end := max(st.LogEndOffset, lead.LogStartOffset)
	if st.Copying || st.CopyBytes > 0 {
		// A staged copy counts while it runs and between a leader's
		// retries: it is resumed, not restarted.
		l.Copying, l.CopiedBytes, l.CopyTotalBytes = true, st.CopyBytes, st.CopyTotalBytes
	}
	l.OffsetsBehind = max(0, lead.HighWatermark-end)
	if span := lead.LogEndOffset - lead.LogStartOffset; span > 0 && lead.SizeBytes > 0 {
		behind := min(l.OffsetsBehind, span)
		l.BytesBehind = int64(float64(lead.SizeBytes) * float64(behind) / float64(span))
	}
	if l.Copying {
		l.BytesBehind = max(l.BytesBehind-l.CopiedBytes, 0)
	}
	return l
}
