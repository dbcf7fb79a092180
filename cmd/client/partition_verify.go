package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stratalog/strata/pkg/client"
)

func newPartitionVerifyCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "verify TOPIC[/PARTITION]",
		Short: "Check that a partition's replicas hold the same records",
		Long: `Compare the replicas of one partition (or of every partition of TOPIC),
batch by batch, from the log start every replica has up to the high
watermark every replica has. Each broker checksums its own copy in runs
of offsets; a run that differs is narrowed down to its first batch.

Prints one line per partition: the range compared and whether the
replicas agree, or the first offset where they differ. Exits 1 if any
partition's replicas differ or a replica could not be read. It reads
every replica's copy of the range once, so on a large partition it takes
as long as reading it from disk.`,
		Example: `  strata partition verify events/0
  strata partition verify events -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			topic, parts := args[0], []int32(nil)
			if strings.Contains(args[0], "/") {
				t, p, err := parseTopicPartition(args[0])
				if err != nil {
					return err
				}
				topic, parts = t, []int32{p}
			}
			return e.admin(cmd.Context(), func(ctx context.Context, a *client.Admin) error {
				if parts == nil {
					d, err := a.DescribeTopic(ctx, topic)
					if err != nil {
						return onExistingTopic(topic, err)
					}
					for _, p := range d.Partitions {
						parts = append(parts, p.Partition)
					}
				}
				var results []client.PartitionVerification
				for _, p := range parts {
					r, err := a.VerifyPartition(ctx, topic, p)
					if err != nil {
						return onExistingTopic(topic, err)
					}
					results = append(results, r)
				}
				if err := e.printVerify(results); err != nil {
					return err
				}
				for _, r := range results {
					if !r.Agree {
						return errors.New("replicas differ or could not be read (see above)")
					}
				}
				return nil
			})
		},
	}
}

func (e *env) printVerify(results []client.PartitionVerification) error {
	if e.output == "json" {
		out := make([]verifyJSON, len(results))
		for i, r := range results {
			out[i] = verifyJSON{Topic: r.Topic, Partition: r.Partition, FromOffset: r.FromOffset, ToOffset: r.ToOffset,
				Batches: r.Batches, Bytes: r.Bytes, Agree: r.Agree, FirstDifference: r.FirstDifference, Replicas: []replicaSumJSON{}}
			for _, rc := range r.Replicas {
				out[i].Replicas = append(out[i].Replicas, replicaSumJSON{NodeID: rc.NodeID, LogStartOffset: rc.LogStartOffset,
					HighWatermark: rc.HighWatermark, CRC: fmt.Sprintf("%08x", rc.CRC), Error: rc.Error})
			}
		}
		return printJSON(e.stdout, out)
	}
	t := newTable(e.stdout, "PARTITION", "OFFSETS", "BATCHES", "BYTES", "RESULT")
	for _, r := range results {
		result := "replicas agree"
		switch {
		case r.FirstDifference >= 0:
			result = fmt.Sprintf("DIFFER from offset %d", r.FirstDifference)
		case !r.Agree:
			result = "INCOMPLETE"
		}
		var bad []string
		for _, rc := range r.Replicas {
			if rc.Error != "" {
				bad = append(bad, fmt.Sprintf("broker %d: %s", rc.NodeID, rc.Error))
			}
		}
		if len(bad) > 0 {
			result += " (" + strings.Join(bad, "; ") + ")"
		}
		t.row(fmt.Sprintf("%s/%d", r.Topic, r.Partition), fmt.Sprintf("%d..%d", r.FromOffset, r.ToOffset), r.Batches, r.Bytes, result)
	}
	return t.flush()
}

// verifyJSON is one partition's result in --output json.
type verifyJSON struct {
	Topic      string `json:"topic"`
	Partition  int32  `json:"partition"`
	FromOffset int64  `json:"from_offset"` // compared batches with base offsets in [from_offset, to_offset)
	ToOffset   int64  `json:"to_offset"`
	Batches    int64  `json:"batches"`
	Bytes      int64  `json:"bytes"`
	Agree      bool   `json:"agree"`
	// FirstDifference is the base offset of the first batch that differs,
	// -1 when none does.
	FirstDifference int64            `json:"first_difference"`
	Replicas        []replicaSumJSON `json:"replicas"`
}

type replicaSumJSON struct {
	NodeID         uint32 `json:"node_id"`
	LogStartOffset int64  `json:"log_start_offset"`
	HighWatermark  int64  `json:"high_watermark"`
	CRC            string `json:"crc"`             // of every compared batch, hex
	Error          string `json:"error,omitempty"` // the replica could not be read
}
