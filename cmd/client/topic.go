package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/stratalog/strata/pkg/client"
)

func newTopicCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topic",
		Short: "Create, list, describe, configure and delete topics and their records",
		Long: `A topic is a named log split into partitions. Each partition is an
ordered, append-only sequence of records numbered by offset, led by one
broker and copied to --replicas brokers.`,
		Example: `  strata topic create events -p 6 -c retention.ms=86400000
  strata topic list
  strata topic describe events -o json
  strata topic delete-records events/0 --before 1200`,
	}
	cmd.AddCommand(newTopicCreateCmd(e), newTopicListCmd(e), newTopicDescribeCmd(e), newTopicDeleteCmd(e), newTopicAlterConfigCmd(e),
		newTopicDeleteRecordsCmd(e))
	return cmd
}

func newTopicCreateCmd(e *env) *cobra.Command {
	var partitions, replicas int32
	var configs []string
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a topic",
		Long: `Create a topic with --partitions partitions, each copied to --replicas
brokers (0 = the broker default). More partitions allow more parallel
consumers; records with the same key always go to the same partition, so
changing the count later moves keys.

Topic configs (retention.ms, max.message.bytes, ...) are set with -c
key=value, repeatable; "strata topic describe" lists every key and its
value.`,
		Example: `  strata topic create events
  strata topic create orders -p 12 -r 3 -c retention.ms=604800000 -c cleanup.policy=delete`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := parseKeyValues(configs, "--config")
			if err != nil {
				return err
			}
			return e.admin(cmd.Context(), func(ctx context.Context, a *client.Admin) error {
				d, err := a.CreateTopic(ctx, args[0], partitions, replicas, cfg)
				if err != nil {
					return onTopic(args[0], err)
				}
				if e.output == "json" {
					return printJSON(e.stdout, topicJSON(d))
				}
				_, err = fmt.Fprintf(e.stdout, "created topic %q with %s, replication factor %d\n",
					d.Name, plural(int64(len(d.Partitions)), "partition"), d.ReplicationFactor)
				return err
			})
		},
	}
	cmd.Flags().Int32VarP(&partitions, "partitions", "p", 1, "number of partitions")
	cmd.Flags().Int32VarP(&replicas, "replicas", "r", 0, "replication factor (0 = broker default)")
	cmd.Flags().StringArrayVarP(&configs, "config", "c", nil, "topic config key=value (repeatable)")
	return cmd
}

func newTopicListCmd(e *env) *cobra.Command {
	var internal bool
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List topics",
		Long: `List every topic with its partition count and replication factor.
Internal topics (names starting with "__", such as __consumer_offsets,
where consumer groups keep their offsets) are left out unless --internal
is given.`,
		Example: `  strata topic list
  strata topic list --internal -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return e.admin(cmd.Context(), func(ctx context.Context, a *client.Admin) error {
				topics, err := a.ListTopics(ctx)
				if err != nil {
					return err
				}
				if !internal {
					topics = slices.DeleteFunc(topics, func(t client.TopicSummary) bool { return isInternalTopic(t.Name) })
				}
				slices.SortFunc(topics, func(x, y client.TopicSummary) int { return strings.Compare(x.Name, y.Name) })
				if e.output == "json" {
					out := make([]topicSummaryJSON, 0, len(topics))
					for _, t := range topics {
						out = append(out, topicSummaryJSON{t.Name, t.Partitions, t.ReplicationFactor})
					}
					return printJSON(e.stdout, out)
				}
				t := newTable(e.stdout, "NAME", "PARTITIONS", "REPLICAS")
				for _, tp := range topics {
					t.row(tp.Name, tp.Partitions, tp.ReplicationFactor)
				}
				return t.flush()
			})
		},
	}
	cmd.Flags().BoolVar(&internal, "internal", false, `also list internal topics (names starting with "__")`)
	return cmd
}

// isInternalTopic: the broker's own topics are named "__..." (users
// cannot create such names).
func isInternalTopic(name string) bool { return strings.HasPrefix(name, "__") }

func newTopicDescribeCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "describe NAME",
		Short: "Show a topic's partitions, offsets and configs",
		Long: `Show each partition's leader, replicas and in-sync replicas, and its
offsets: LOG-START is the first offset still stored, HIGH-WATERMARK the
first offset consumers cannot read yet, LOG-END the next offset the
leader will write. Then, for each replica not in sync, how far it is
behind the leader (offsets, and bytes estimated from the leader's log) and,
while it copies the leader's log (a new replica, or one that needs records
retention deleted), how much of the copy is done. Then every config key,
with SOURCE "default" when the value comes from the broker default.`,
		Example: `  strata topic describe events
  strata topic describe events -o json | jq '.partitions[].high_watermark'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.admin(cmd.Context(), func(ctx context.Context, a *client.Admin) error {
				d, err := a.DescribeTopic(ctx, args[0])
				if err != nil {
					return onExistingTopic(args[0], err)
				}
				return e.printTopic(d)
			})
		},
	}
}

func newTopicDeleteCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "delete NAME",
		Aliases: []string{"rm"},
		Short:   "Delete a topic and all its records",
		Long:    `Delete a topic. Its records are gone for good; there is no undo.`,
		Example: `  strata topic delete events`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.admin(cmd.Context(), func(ctx context.Context, a *client.Admin) error {
				if err := a.DeleteTopic(ctx, args[0]); err != nil {
					return onExistingTopic(args[0], err)
				}
				if e.output == "json" {
					return printJSON(e.stdout, map[string]string{"deleted": args[0]})
				}
				_, err := fmt.Fprintf(e.stdout, "deleted topic %q\n", args[0])
				return err
			})
		},
	}
}

func newTopicAlterConfigCmd(e *env) *cobra.Command {
	var set, del []string
	cmd := &cobra.Command{
		Use:   "alter-config NAME",
		Short: "Change or reset a topic's configs",
		Long: `Set configs with --set key=value and reset configs to the broker default
with --delete key, both repeatable, in one step: either all changes apply
or none. The topic's configs after the change are printed.`,
		Example: `  strata topic alter-config events --set retention.ms=3600000
  strata topic alter-config events --delete retention.ms --set max.message.bytes=2097152`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kv, err := parseKeyValues(set, "--set")
			if err != nil {
				return err
			}
			if len(kv) == 0 && len(del) == 0 {
				return usageErrorf("nothing to change: give --set key=value or --delete key")
			}
			return e.admin(cmd.Context(), func(ctx context.Context, a *client.Admin) error {
				d, err := a.AlterTopicConfig(ctx, args[0], kv, del)
				if err != nil {
					return onExistingTopic(args[0], err)
				}
				if e.output == "json" {
					return printJSON(e.stdout, topicJSON(d))
				}
				return e.printConfigs(d)
			})
		},
	}
	cmd.Flags().StringArrayVar(&set, "set", nil, "config key=value to set (repeatable)")
	cmd.Flags().StringArrayVar(&del, "delete", nil, "config key to reset to the broker default (repeatable)")
	return cmd
}

func (e *env) printTopic(d client.TopicDetail) error {
	if e.output == "json" {
		return printJSON(e.stdout, topicJSON(d))
	}
	fmt.Fprintf(e.stdout, "NAME: %s\nREPLICATION-FACTOR: %d\n\n", d.Name, d.ReplicationFactor)
	t := newTable(e.stdout, "PARTITION", "LEADER", "REPLICAS", "ISR", "HIGH-WATERMARK", "LOG-START", "LOG-END")
	for _, p := range d.Partitions {
		t.row(p.Partition, leaderCell(p.Leader), joinIDs(p.Replicas), joinIDs(p.InSyncReplicas),
			p.HighWatermark, p.LogStartOffset, p.LogEndOffset)
	}
	if err := t.flush(); err != nil {
		return err
	}
	if err := e.printLagging(d.Partitions); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout)
	return e.printConfigs(d)
}

// printLagging lists the replicas not in sync and how far behind they are
// (nothing if all are in sync).
func (e *env) printLagging(ps []client.PartitionDetail) error {
	var t *table
	for _, p := range ps {
		for _, l := range p.Lagging {
			if t == nil {
				fmt.Fprintln(e.stdout, "\nNOT IN SYNC:")
				t = newTable(e.stdout, "PARTITION", "REPLICA", "OFFSETS-BEHIND", "BYTES-BEHIND", "LOG-COPY")
			}
			if !l.Answered {
				t.row(p.Partition, l.NodeID, "?", "?", "broker did not answer")
				continue
			}
			cp := "-"
			if l.Copying {
				cp = "copied " + formatBytes(l.CopiedBytes)
				if l.CopyTotalBytes > 0 {
					cp += fmt.Sprintf(" of %s (%d%%)", formatBytes(l.CopyTotalBytes), min(100, l.CopiedBytes*100/l.CopyTotalBytes))
				}
			}
			if a := l.AbstainUntil; a > 0 {
				// Not a copy, but the one column that says what the
				// replica is doing about its lag.
				damaged := fmt.Sprintf("damaged log: refetching, no vote until raft index %d", a)
				if cp == "-" {
					cp = damaged
				} else {
					cp += "; " + damaged
				}
			}
			t.row(p.Partition, l.NodeID, l.OffsetsBehind, "~"+formatBytes(l.BytesBehind), cp)
		}
	}
	if t == nil {
		return nil
	}
	return t.flush()
}

func (e *env) printConfigs(d client.TopicDetail) error {
	t := newTable(e.stdout, "KEY", "VALUE", "SOURCE")
	for _, c := range sortedConfigs(d) {
		t.row(c.Key, c.Value, configSource(c))
	}
	return t.flush()
}

func sortedConfigs(d client.TopicDetail) []client.ConfigEntry {
	cs := slices.Clone(d.Configs)
	slices.SortFunc(cs, func(a, b client.ConfigEntry) int { return strings.Compare(a.Key, b.Key) })
	return cs
}

// parseKeyValues reads repeated key=value flags.
func parseKeyValues(kvs []string, flag string) (map[string]string, error) {
	out := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageErrorf("%s %q: want key=value", flag, kv)
		}
		out[k] = v
	}
	return out, nil
}
