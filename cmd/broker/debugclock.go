package main

import (
	"os"
	"strings"
	"sync"
	"time"
)

// fileClock is the wall clock the hidden --debug-clock-offset-file flag
// gives the broker (broker.Config.Clock: retention, compaction and
// consumer-group decisions): time.Now plus the offset written in the file,
// a Go duration such as "48h" or "-90s". Fault-injection tests skew one
// broker's clock with it without touching the machine's (the broker is a
// static binary: faketime's LD_PRELOAD cannot reach it). The file is
// re-read at most every 100 ms, by the monotonic clock, so a test can step
// the clock while the broker runs; a missing or empty file is offset 0,
// and an unreadable value keeps the last one.
//
// Rejected: an offset flag fixed at start (a test wants jumps while the
// broker runs) and an HTTP endpoint (a debug hook reachable from the
// network).
type fileClock struct {
	path string
	mu   struct {
		sync.Mutex
		offset time.Duration
		readAt time.Time // monotonic; zero = never read
	}
}

const fileClockReread = 100 * time.Millisecond

func (c *fileClock) now() time.Time {
	t := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.readAt.IsZero() || t.Sub(c.mu.readAt) >= fileClockReread {
		c.mu.readAt = t
		b, err := os.ReadFile(c.path)
		switch s := strings.TrimSpace(string(b)); {
		case err != nil || s == "":
			c.mu.offset = 0
		default:
			if d, err := time.ParseDuration(s); err == nil {
				c.mu.offset = d
			}
		}
	}
	return t.Add(c.mu.offset)
}
