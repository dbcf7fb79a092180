package replication

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"

	"github.com/stratalog/strata/pkg/segment"
)

// errEntryInHand stops a ReadLog once the entry a repair needs is in hand.
var errEntryInHand = errors.New("replication: entry fetched")

// RepairDamage rewrites the damaged frame d (a closed segment's, as a scrub
// or a read reports it) from another replica's copy of the same entry:
// every replica stores the same bytes for it (segment/repair.go). It asks
// the leader first, then the other members, and returns the one whose copy
// it wrote. It fails if no replica's copy fits (none answered, or each has
// the entry compacted differently); the damage then stays, reported.
func (g *Group) RepairDamage(ctx context.Context, d *segment.CorruptionError) (raft.ServerID, error) {
	if g.cfg.LogSource == nil {
		return "", errors.New("replication: repair: no log source to fetch the entry from")
	}
	ref, err := g.log.DamagedFrame(d.Segment, d.Offset)
	if err != nil {
		return "", fmt.Errorf("replication: repair: %w", err)
	}
	var peers []raft.ServerID
	if id, _ := g.Leader(); id != "" && id != g.cfg.NodeID {
		peers = append(peers, id)
	}
	servers, err := g.Configuration()
	if err != nil {
		return "", fmt.Errorf("replication: repair: %w", err)
	}
	for _, s := range servers {
		if s.ID != g.cfg.NodeID && (len(peers) == 0 || s.ID != peers[0]) {
			peers = append(peers, s.ID)
		}
	}
	if len(peers) == 0 {
		return "", errors.New("replication: repair: no other replica holds a copy")
	}
	errs := []error{}
	for _, p := range peers {
		var e segment.Entry
		found := false
		err := g.cfg.LogSource.ReadLog(ctx, p, g.cfg.Group, ref.Index, func(ch LogChunk) error {
			for _, x := range ch.Entries {
				if x.Index == ref.Index {
					e, found = x, true
					return errEntryInHand
				}
			}
			if len(ch.Entries) > 0 {
				return fmt.Errorf("replication: repair: %s served no entry %d", p, ref.Index)
			}
			return nil
		})
		if !found {
			if err == nil {
				err = fmt.Errorf("replication: repair: %s does not hold entry %d", p, ref.Index)
			}
			errs = append(errs, fmt.Errorf("from %s: %w", p, err))
			continue
		}
		if err := g.log.RepairFrame(ref, e); err != nil {
			errs = append(errs, fmt.Errorf("from %s: %w", p, err))
			continue
		}
		return p, nil
	}
	return "", fmt.Errorf("replication: repair of entry %d: %w", ref.Index, errors.Join(errs...))
}
