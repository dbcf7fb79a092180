package main

import (
	v1 "github.com/stratalog/strata/api/v1"
)

// The JSON shapes of --output json. Keys are snake_case and stable:
// scripts depend on them.

type topicSummaryJSON struct {
	Name              string `json:"name"`
	Partitions        int32  `json:"partitions"`
	ReplicationFactor int32  `json:"replication_factor"`
}

type partitionJSON struct {
	Partition      int32    `json:"partition"`
	Leader         uint32   `json:"leader"`
	Replicas       []uint32 `json:"replicas"`
	InSyncReplicas []uint32 `json:"in_sync_replicas"`
	HighWatermark  int64    `json:"high_watermark"`
	LogStartOffset int64    `json:"log_start_offset"`
	LogEndOffset   int64    `json:"log_end_offset"`
}

type topicDescJSON struct {
	Name       string            `json:"name"`
	Partitions []partitionJSON   `json:"partitions"`
	Configs    map[string]string `json:"configs"`
}

func topicJSON(d *v1.TopicDescription) topicDescJSON {
	out := topicDescJSON{Name: d.GetName(), Partitions: []partitionJSON{}, Configs: map[string]string{}}
	for _, p := range d.GetPartitions() {
		out.Partitions = append(out.Partitions, partitionJSON{
			Partition:      p.GetPartition(),
			Leader:         p.GetLeader(),
			Replicas:       nonNil(p.GetReplicas()),
			InSyncReplicas: nonNil(p.GetInSyncReplicas()),
			HighWatermark:  p.GetHighWatermark(),
			LogStartOffset: p.GetLogStartOffset(),
			LogEndOffset:   p.GetLogEndOffset(),
		})
	}
	for _, c := range d.GetConfigs() {
		out.Configs[c.GetKey()] = c.GetValue()
	}
	return out
}

func nonNil(ids []uint32) []uint32 {
	if ids == nil {
		return []uint32{}
	}
	return ids
}

type brokerJSON struct {
	NodeID   uint32 `json:"node_id"`
	APIAddr  string `json:"api_addr"`
	HTTPAddr string `json:"http_addr"`
	State    string `json:"state"`
	Version  string `json:"version"`
	// Controller: this broker leads the cluster's metadata.
	Controller bool `json:"controller"`
}

type clusterJSON struct {
	ClusterID    string       `json:"cluster_id"`
	ControllerID uint32       `json:"controller_id"`
	Brokers      []brokerJSON `json:"brokers"`
}

type headerJSON struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// recordJSON is one consumed record; key is null for a null key, value
// null for a tombstone. Timestamp is Unix milliseconds.
type recordJSON struct {
	Topic     string       `json:"topic"`
	Partition int32        `json:"partition"`
	Offset    int64        `json:"offset"`
	Timestamp int64        `json:"timestamp"`
	Key       *string      `json:"key"`
	Value     *string      `json:"value"`
	Headers   []headerJSON `json:"headers"`
}

type benchJSON struct {
	Records       int64   `json:"records"`
	RecordsPerSec float64 `json:"records_per_sec"`
	MBPerSec      float64 `json:"mb_per_sec"`
	P50Ms         float64 `json:"p50_ms"`
	P99Ms         float64 `json:"p99_ms"`
	P999Ms        float64 `json:"p999_ms"`
	ElapsedSec    float64 `json:"elapsed_sec"`
}
