package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/stratalog/strata/pkg/apierr"
	"github.com/stratalog/strata/pkg/client"
)

type seekFlags struct {
	to      string
	topic   string
	execute bool
	force   bool
}

func newGroupSeekCmd(e *env) *cobra.Command {
	var f seekFlags
	cmd := &cobra.Command{
		Use:   "seek GROUP --to start|end|OFFSET|-N|@TIME [--topic TOPIC] [--execute]",
		Short: "Move a group's committed offsets (a plan until --execute)",
		Long: `Move the committed offsets of GROUP, so that its consumers resume from
somewhere else: to replay records, or to skip them. Like Kafka's
kafka-consumer-groups --reset-offsets, it only prints the plan (each
partition with its current committed offset and the new one) until run
again with --execute.

--to says where:
  start        the first stored record
  end          the end: skip everything not yet read
  OFFSET       this offset in every partition (as given, even if it is not
               stored: consumers then apply their reset policy)
  -N           N records before the end
  @TIME        the first record at or after TIME, RFC 3339
               (@2026-01-02T15:04:05Z) or Unix milliseconds

The partitions are those of --topic, or else every partition the group
has committed. The group must have no active members (their own commits
would race the change): stop its consumers first. --force skips this
command's own check, but the coordinator still refuses while members
are active; it helps when "group describe" shows members the
coordinator is about to expire.`,
		Example: `  strata group seek billing --to start
  strata group seek billing --to start --execute
  strata group seek billing --to @2026-11-23T08:00:00Z --topic orders --execute
  strata group seek billing --to -100 --topic orders -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.to == "" {
				return usageErrorf("--to is required: start, end, OFFSET, -N or @TIME")
			}
			to, err := client.ParseOffset(f.to)
			if err != nil {
				return usageErrorf("--to: %v", err)
			}
			return e.admin(cmd.Context(), func(ctx context.Context, a *client.Admin) error {
				return onGroup(args[0], e.seek(ctx, a, args[0], to, &f))
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.to, "to", "", "where to: start, end, OFFSET, -N or @TIME (required)")
	fl.StringVar(&f.topic, "topic", "", "move every partition of this topic (default: every partition the group has committed)")
	fl.BoolVar(&f.execute, "execute", false, "apply the plan (without it, only print it)")
	fl.BoolVar(&f.force, "force", false, "do not check for active members first")
	return cmd
}

func (e *env) seek(ctx context.Context, a *client.Admin, group string, to client.Offset, f *seekFlags) error {
	members := 0
	d, err := a.DescribeGroup(ctx, group)
	switch {
	case err == nil:
		members = len(d.Members)
	case !errors.Is(err, apierr.ErrUnknownGroup):
		return err
	}
	if f.execute && members > 0 && !f.force {
		return fmt.Errorf("group %q has %d active members: stop its consumers before moving its offsets (see them with: strata group describe %s)", group, members, group)
	}

	// The partitions, and what is committed now.
	current := make(map[client.TopicPartition]int64)
	var parts []client.TopicPartition
	if f.topic != "" {
		td, err := a.DescribeTopic(ctx, f.topic)
		if err != nil {
			return onExistingTopic(f.topic, err)
		}
		for _, p := range td.Partitions {
			parts = append(parts, client.TopicPartition{Topic: f.topic, Partition: p.Partition})
		}
	}
	offs, err := a.FetchOffsets(ctx, group, parts...)
	if err != nil {
		return err
	}
	for _, o := range offs {
		tp := client.TopicPartition{Topic: o.Topic, Partition: o.Partition}
		current[tp] = o.Offset
		if f.topic == "" && o.Offset >= 0 {
			parts = append(parts, tp)
		}
	}
	if len(parts) == 0 {
		return fmt.Errorf("group %q has no committed offsets: name the topic to move with --topic", group)
	}

	// Where each goes.
	byTopic := make(map[string][]int32)
	for _, tp := range parts {
		byTopic[tp.Topic] = append(byTopic[tp.Topic], tp.Partition)
	}
	plan := make(map[client.TopicPartition]int64, len(parts))
	for _, topic := range slices.Sorted(maps.Keys(byTopic)) {
		pos, err := a.ResolveOffset(ctx, topic, byTopic[topic], to)
		if err != nil {
			return onExistingTopic(topic, err)
		}
		for p, o := range pos {
			plan[client.TopicPartition{Topic: topic, Partition: p}] = o
		}
	}
	if f.execute {
		if err := a.CommitOffsets(ctx, group, plan); err != nil {
			return err
		}
	}
	return e.printSeek(group, parts, current, plan, f.execute, members)
}

func (e *env) printSeek(group string, parts []client.TopicPartition, current, plan map[client.TopicPartition]int64, executed bool, members int) error {
	slices.SortFunc(parts, func(a, b client.TopicPartition) int {
		return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	cur := func(tp client.TopicPartition) int64 {
		if o, ok := current[tp]; ok {
			return o
		}
		return -1
	}
	if e.output == "json" {
		out := seekJSON{Group: group, Executed: executed, Partitions: []seekPartJSON{}}
		for _, tp := range parts {
			out.Partitions = append(out.Partitions, seekPartJSON{tp.Topic, tp.Partition, cur(tp), plan[tp]})
		}
		return printJSON(e.stdout, out)
	}
	t := newTable(e.stdout, "TOPIC", "PARTITION", "CURRENT", "NEW")
	for _, tp := range parts {
		c := fmt.Sprint(cur(tp))
		if cur(tp) < 0 {
			c = "-"
		}
		t.row(tp.Topic, tp.Partition, c, plan[tp])
	}
	if err := t.flush(); err != nil {
		return err
	}
	switch {
	case executed:
		fmt.Fprintf(e.stdout, "\nmoved the offsets of group %q\n", group)
	case members > 0:
		fmt.Fprintf(e.stdout, "\nplan only; the group has %d active members, so --execute would be refused until they stop\n", members)
	default:
		fmt.Fprintf(e.stdout, "\nplan only: run again with --execute to apply it\n")
	}
	return nil
}
