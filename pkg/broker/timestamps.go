package broker

import (
	"math"
	"time"

	v1 "github.com/stratalog/strata/api/v1"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/metadata"
	"github.com/stratalog/strata/pkg/record"
)

// Record timestamps, per topic, with Kafka's configs and semantics:
//
//   - message.timestamp.type=CreateTime (default): records keep the
//     producer's timestamps, but a batch holding one stamped more than
//     message.timestamp.after.max.ms (default 1 h) after the clock below,
//     or more than message.timestamp.before.max.ms (default
//     unbounded) before it, is refused with INVALID_REQUEST and nothing of
//     the partition's request is stored. Time retention and the time index
//     go by the newest record of a segment, so a record stamped in 2090
//     would keep its segment forever.
//   - message.timestamp.type=LogAppendTime: the leader stamps each batch
//     with the clock below when it appends it (record.SetLogAppendTime: attribute
//     bit, max timestamp, CRC); every record reads back with that time. No
//     window applies. The produce response carries the time.
//
// The clock is the one time retention uses: the time the brokers' clocks
// agree on (agreedNow, the median of theirs), so that one leader whose
// clock is off neither refuses good records nor stamps odd times. Kafka
// uses the leader's own clock; producers whose clocks run ahead of the
// cluster's by more than after.max.ms are refused all the same: keep
// clocks in sync (NTP).

// replicaConfig is the config of a replica this broker holds.
func (b *Broker) replicaConfig(group string) (metadata.TopicConfig, bool) {
	b.replicas.mu.RLock()
	defer b.replicas.mu.RUnlock()
	r, ok := b.replicas.mu.byGroup[group]
	if !ok {
		return metadata.TopicConfig{}, false
	}
	return r.config, true
}

// stampBatch applies cfg's timestamp rules to one produced batch, in
// place, at the broker's time now (unix ms). It reports whether the batch
// was stamped with log-append time.
func stampBatch(batch []byte, h record.BatchHeader, cfg metadata.TopicConfig, now int64) (bool, error) {
	if cfg.TimestampType == metadata.LogAppendTime {
		if record.Checksum(batch) != h.CRC {
			return false, record.ErrCorrupt
		}
		record.SetLogAppendTime(batch, now)
		return true, nil
	}
	newest := h.MaxTimestamp
	if newest > now && newest-now > cfg.TimestampAfterMaxMs {
		return false, badTimestamp(newest, now, "after", metadata.KeyTimestampAfterMax, cfg.TimestampAfterMaxMs)
	}
	if cfg.TimestampBeforeMaxMs == math.MaxInt64 {
		return false, nil
	}
	// The oldest record needs the records themselves: only topics that
	// bound the past pay for decoding (a log-append-time batch's records
	// all read as its max timestamp).
	oldest := newest
	if !h.IsLogAppendTime() {
		recs, err := record.Decode(batch, record.DecodeOptions{})
		if err != nil {
			return false, err
		}
		for _, r := range recs {
			oldest = min(oldest, r.Timestamp.UnixMilli())
		}
	}
	if oldest < now && now-oldest > cfg.TimestampBeforeMaxMs {
		return false, badTimestamp(oldest, now, "before", metadata.KeyTimestampBeforeMax, cfg.TimestampBeforeMaxMs)
	}
	return false, nil
}

func badTimestamp(ts, now int64, side, key string, limit int64) error {
	d := time.Duration(ts-now) * time.Millisecond
	if side == "before" {
		d = -d
	}
	return apierr.New(v1.ErrorCode_ERROR_CODE_INVALID_REQUEST,
		"a record's timestamp %s is %s %s the broker's clock; the topic's %s allows %d ms (fix the producer's clock, or use message.timestamp.type=LogAppendTime)",
		time.UnixMilli(ts).UTC().Format(time.RFC3339Nano), d.Round(time.Millisecond), side, key, limit)
}
