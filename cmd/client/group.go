package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/stratalog/strata/pkg/client"
)

func newGroupCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "group",
		Short: "List, describe, move and delete consumer groups",
		Long: `A consumer group is a set of consumers ("strata consume TOPIC --group G",
or the Go client's GroupConsumer) that share a topic's partitions: each
partition is read by one member at a time, and the group commits how far
it got in each. The group's coordinator, one of the brokers, assigns the
partitions and keeps the committed offsets.`,
		Example: `  strata group list
  strata group describe billing
  strata group seek billing --to start --execute
  strata group delete billing`,
	}
	cmd.AddCommand(newGroupListCmd(e), newGroupDescribeCmd(e), newGroupSeekCmd(e), newGroupDeleteCmd(e))
	return cmd
}

func newGroupListCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the consumer groups",
		Long: `List every consumer group of the cluster (every broker is asked for the
groups it coordinates): its state (empty, stable, or reconciling while
partitions move between members), how many members it has, and the
broker that coordinates it.`,
		Example: `  strata group list
  strata group list -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return e.admin(cmd.Context(), func(ctx context.Context, a *client.Admin) error {
				groups, err := a.ListGroups(ctx)
				if err != nil {
					return err
				}
				if e.output == "json" {
					out := []groupSummaryJSON{}
					for _, g := range groups {
						out = append(out, groupSummaryJSON{g.Group, g.State, g.Members, g.Coordinator})
					}
					return printJSON(e.stdout, out)
				}
				t := newTable(e.stdout, "GROUP", "STATE", "MEMBERS", "COORDINATOR")
				for _, g := range groups {
					t.row(g.Group, g.State, g.Members, g.Coordinator)
				}
				return t.flush()
			})
		},
	}
}

func newGroupDescribeCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "describe GROUP",
		Short: "Show a group's members, committed offsets and lag",
		Long: `Show a consumer group: its state, epoch and coordinator; each member with
the partitions assigned to it; and each partition the group reads or has
committed, with the committed offset, the log end (high watermark), the
lag between them and the member that owns it. The total lag is the sum.

A partition with nothing committed shows "-" as committed, and its lag
counts from the log start. -o json gives the same, with "committed": -1.`,
		Example: `  strata group describe billing
  strata group describe billing -o json | jq .total_lag`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.admin(cmd.Context(), func(ctx context.Context, a *client.Admin) error {
				d, err := a.DescribeGroup(ctx, args[0])
				if err != nil {
					return onGroup(args[0], err)
				}
				return e.printGroup(d)
			})
		},
	}
}

func (e *env) printGroup(d client.GroupDetail) error {
	if e.output == "json" {
		return printJSON(e.stdout, groupJSON(d))
	}
	fmt.Fprintf(e.stdout, "GROUP: %s\nSTATE: %s\nEPOCH: %d\nASSIGNOR: %s\nCOORDINATOR: %d\n\n",
		d.Group, d.State, d.Epoch, orDash(d.Assignor), d.Coordinator)
	t := newTable(e.stdout, "MEMBER", "INSTANCE", "CLIENT", "EPOCH", "SUBSCRIPTION", "ASSIGNED")
	for _, m := range d.Members {
		sub := strings.Join(m.Topics, ",")
		if m.TopicRegex != "" {
			sub = "/" + m.TopicRegex + "/"
		}
		t.row(m.MemberID, orDash(m.InstanceID), orDash(m.ClientID), m.MemberEpoch, orDash(sub),
			orDash(strings.Join(partitionNames(m.Assignment), ",")))
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout)
	t = newTable(e.stdout, "TOPIC", "PARTITION", "COMMITTED", "LOG-END", "LAG", "OWNER")
	for _, p := range d.Partitions {
		committed := fmt.Sprint(p.Committed)
		if p.Committed < 0 {
			committed = "-"
		}
		t.row(p.Topic, p.Partition, committed, p.LogEnd, p.Lag, orDash(p.MemberID))
	}
	if err := t.flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(e.stdout, "\nTOTAL-LAG: %d\n", d.TotalLag)
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newGroupDeleteCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "delete GROUP",
		Short: "Delete a consumer group and its committed offsets",
		Long: `Delete a consumer group and every offset it committed. The group must
have no members: stop its consumers first (a member that stopped without
leaving counts until its session times out, 45 s by default). A consumer
that later joins a group of the same name starts afresh, by its reset
policy.`,
		Example: `  strata group delete billing`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.admin(cmd.Context(), func(ctx context.Context, a *client.Admin) error {
				if err := a.DeleteGroup(ctx, args[0]); err != nil {
					return onGroup(args[0], err)
				}
				if e.output == "json" {
					return printJSON(e.stdout, map[string]string{"deleted": args[0]})
				}
				_, err := fmt.Fprintf(e.stdout, "deleted group %q\n", args[0])
				return err
			})
		},
	}
}

// groupError remembers which group a failed command was about, so the
// advice can name it.
type groupError struct {
	group string
	err   error
}

func (g *groupError) Error() string { return g.err.Error() }
func (g *groupError) Unwrap() error { return g.err }

func onGroup(group string, err error) error {
	if err == nil {
		return nil
	}
	return &groupError{group, err}
}
