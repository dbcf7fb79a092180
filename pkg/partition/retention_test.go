package partition

import (
	"testing"
	"time"

	"github.com/stratalog/strata/pkg/metadata"
	"github.com/stratalog/strata/pkg/segment"
)

func TestRetentionPoint(t *testing.T) {
	now := time.UnixMilli(1_000_000_000)
	ms := now.UnixMilli()
	// Four segments of 100 bytes: offsets 0-9, 10-19, 20-29, 30- (active),
	// newest records 400 s, 300 s, 200 s and 100 s old.
	segs := []segment.SegmentInfo{
		{BaseOffset: 0, NextOffset: 10, Size: 100, MaxTimestamp: ms - 400_000},
		{BaseOffset: 10, NextOffset: 20, Size: 100, MaxTimestamp: ms - 300_000},
		{BaseOffset: 20, NextOffset: 30, Size: 100, MaxTimestamp: ms - 200_000},
		{BaseOffset: 30, NextOffset: 35, Size: 100, MaxTimestamp: ms - 100_000},
	}
	cfg := func(policy string, retMs, retBytes int64, immutable bool) metadata.TopicConfig {
		return metadata.TopicConfig{CleanupPolicy: policy, RetentionMs: retMs, RetentionBytes: retBytes, Immutable: immutable}
	}
	for _, tc := range []struct {
		name  string
		cfg   metadata.TopicConfig
		start int64
		want  int64
	}{
		{"nothing old enough", cfg("delete", 500_000, -1, false), 0, 0},
		{"by time: two segments", cfg("delete", 250_000, -1, false), 0, 20},
		{"by time: never the active segment", cfg("delete", 1, -1, false), 0, 30},
		{"by size: keep at least 200 bytes", cfg("delete", -1, 200, false), 0, 20},
		{"by size: 250 bytes keeps three segments", cfg("delete", -1, 250, false), 0, 10},
		{"either limit", cfg("delete", 350_000, 300, false), 0, 10},
		{"already past", cfg("delete", 250_000, -1, false), 25, 25},
		{"log start inside a segment counts it", cfg("delete", -1, 200, false), 15, 20},
		{"compact only: never", cfg("compact", 1, 1, false), 0, 0},
		{"compact,delete: yes", cfg("compact,delete", 250_000, -1, false), 0, 20},
		{"immutable: never", cfg("delete", 1, 1, true), 0, 0},
	} {
		if got := RetentionPoint(segs, tc.start, now, tc.cfg); got != tc.want {
			t.Errorf("%s: retention point %d, want %d", tc.name, got, tc.want)
		}
	}
	if got := RetentionPoint(segs[3:], 0, now, cfg("delete", 1, 1, false)); got != 0 {
		t.Errorf("only the active segment: retention point %d, want 0", got)
	}
}
