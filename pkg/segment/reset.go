package segment

// Reset deletes every segment and makes the log empty, continuing at
// offset start: the next Append may have any raft index and its first
// record gets offset start. A replica that installs a snapshot uses it to
// replace its log with a copy of the leader's. The start offset is
// persisted before any segment is deleted, so a crash in between leaves
// either the old log or an empty one starting at start (the replica then
// fetches again).
func (l *Log) Reset(start int64) error {
	l.mu.RLock()
	closed, segs := l.mu.closed, l.mu.segs
	l.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if start < 0 {
		return invalidEntry("reset to negative offset %d", start)
	}
	if err := writeStartFile(l.dir, start); err != nil {
		return err
	}
	l.mu.Lock()
	l.mu.segs = nil
	l.mu.start, l.mu.next = start, start
	l.mu.rewrites++
	l.mu.Unlock()
	for i := len(segs) - 1; i >= 0; i-- {
		segs[i].f.Close()
		if err := removeSegmentFiles(segs[i].path); err != nil {
			return err
		}
		l.dirDirty = true
	}
	return l.syncDir()
}
