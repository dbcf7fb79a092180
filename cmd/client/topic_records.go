package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/client"
)

func newTopicDeleteRecordsCmd(e *env) *cobra.Command {
	var before string
	cmd := &cobra.Command{
		Use:   "delete-records TOPIC[/PARTITION] --before OFFSET",
		Short: "Delete a partition's records below an offset",
		Long: `Delete the records below --before in one partition (TOPIC/PARTITION) or in
every partition of a topic (TOPIC), on every replica, by moving the
partition's log start offset forward: what retention does, on demand. The
records are gone for good; there is no undo and no confirmation. Offsets
do not change: the next record produced still gets the next offset.

--before is an offset, or "end" (or -1) for the high watermark: every
record consumers can read is deleted. An offset past the high watermark is
refused. A partition whose log already starts at or after --before is left
as it is.

The new log start offset of each partition is printed. Consumers whose
position was deleted are reset by their reset policy ("strata consume
--reset"). Immutable topics refuse: their records are kept forever.`,
		Example: `  strata topic delete-records events/0 --before 1200
  strata topic delete-records events --before end
  strata topic delete-records events/3 --before -1 -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			topic, partition, all, err := parseTopicOrPartition(args[0])
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("before") {
				return usageErrorf("--before OFFSET is required (an offset, or end for everything)")
			}
			offset, err := parseBefore(before)
			if err != nil {
				return err
			}
			return e.admin(cmd.Context(), func(ctx context.Context, a *client.Admin) error {
				parts := []int32{partition}
				if all {
					d, err := a.DescribeTopic(ctx, topic)
					if err != nil {
						return onExistingTopic(topic, err)
					}
					parts = parts[:0]
					for _, p := range d.Partitions {
						parts = append(parts, p.Partition)
					}
				}
				req := make(map[int32]int64, len(parts))
				for _, p := range parts {
					req[p] = offset
				}
				starts, err := a.DeleteRecords(ctx, topic, req)
				if perr := e.printLogStarts(topic, starts); perr != nil {
					return perr
				}
				if errors.Is(err, apierr.ErrPolicyViolation) {
					// DeleteRecords refuses only immutable topics (strata.proto).
					return fmt.Errorf("topic %q is immutable: its records are kept forever and cannot be deleted", topic)
				}
				return onExistingTopic(topic, err)
			})
		},
	}
	cmd.Flags().StringVar(&before, "before", "", `delete records below this offset; "end" or -1 for all (required)`)
	return cmd
}

type logStartJSON struct {
	Topic          string `json:"topic"`
	Partition      int32  `json:"partition"`
	LogStartOffset int64  `json:"log_start_offset"`
}

// printLogStarts prints the partitions DeleteRecords moved; nothing when
// none did (the error says why).
func (e *env) printLogStarts(topic string, starts map[int32]int64) error {
	if len(starts) == 0 {
		return nil
	}
	parts := slices.Sorted(maps.Keys(starts))
	if e.output == "json" {
		out := make([]logStartJSON, 0, len(parts))
		for _, p := range parts {
			out = append(out, logStartJSON{topic, p, starts[p]})
		}
		return printJSON(e.stdout, out)
	}
	t := newTable(e.stdout, "TOPIC", "PARTITION", "NEW-LOG-START")
	for _, p := range parts {
		t.row(topic, p, starts[p])
	}
	return t.flush()
}

// parseTopicOrPartition reads TOPIC/PARTITION, or TOPIC for all of its
// partitions (topic names cannot hold a slash).
func parseTopicOrPartition(s string) (topic string, partition int32, all bool, err error) {
	if !strings.Contains(s, "/") {
		if s == "" {
			return "", 0, false, usageErrorf("empty topic name")
		}
		return s, 0, true, nil
	}
	topic, partition, err = parseTopicPartition(s)
	return topic, partition, false, err
}

// parseBefore reads --before: an offset from 0, or end (-1).
func parseBefore(s string) (int64, error) {
	switch strings.ToLower(s) {
	case "end", "latest", "hw", "high-watermark":
		return client.BeforeHighWatermark, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < client.BeforeHighWatermark {
		return 0, usageErrorf("--before %q: want an offset from 0, or end (or -1) for the high watermark", s)
	}
	return n, nil
}
