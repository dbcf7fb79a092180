package replication

import "time"

// SetRollLimits changes when the log rolls to a new segment (a topic's
// segment.bytes and segment.ms changed at runtime). It takes the writer
// lock, so it is safe against raft's concurrent StoreLogs.
func (s *LogStore) SetRollLimits(maxBytes int64, maxAge time.Duration) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.log.SetRollLimits(maxBytes, maxAge)
}

// SetRollLimits changes when the group's log rolls; see LogStore.SetRollLimits.
func (g *Group) SetRollLimits(maxBytes int64, maxAge time.Duration) error {
	return g.store.SetRollLimits(maxBytes, maxAge)
}
