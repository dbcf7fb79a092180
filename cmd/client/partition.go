package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/stratalog/strata/pkg/client"
)

func newPartitionCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "partition",
		Short: "Move partitions and their leadership between brokers",
		Long: `Each partition is a Raft group of replicas on several brokers; one of them
leads (takes produce and fetch) and the first listed is the preferred
leader, to which leadership returns on its own while that broker is alive.

"transfer-leader" hands leadership to another replica now; "move" changes
the brokers holding the partition, copying it to the new ones before the
old ones let go; "verify" checks that the replicas hold the same records.`,
		Example: `  strata partition transfer-leader events/0 --to 2
  strata partition move events/0 --replicas 2,3,4
  strata partition verify events/0`,
	}
	cmd.AddCommand(newPartitionTransferCmd(e), newPartitionMoveCmd(e), newPartitionVerifyCmd(e))
	return cmd
}

func newPartitionTransferCmd(e *env) *cobra.Command {
	var to uint32
	cmd := &cobra.Command{
		Use:   "transfer-leader TOPIC/PARTITION --to NODE",
		Short: "Hand a partition's leadership to another replica",
		Long: `Hand leadership of one partition to the replica on broker --to, which must
be one of the partition's replicas and in sync. The current leader first
brings it up to date, so no acknowledged record is lost; producers and
consumers follow the new leader by themselves. The command returns once
the new leader is elected.

Leadership goes back to the preferred replica (the first in "strata topic
describe"'s REPLICAS) within seconds while that broker is alive. To make a
change last, reorder the replicas with "strata partition move".`,
		Example: `  strata partition transfer-leader events/0 --to 2
  strata partition transfer-leader events/3 --to 1 -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			topic, p, err := parseTopicPartition(args[0])
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("to") {
				return usageErrorf("--to NODE is required")
			}
			return e.admin(cmd.Context(), func(ctx context.Context, a *client.Admin) error {
				leader, err := a.TransferLeader(ctx, topic, p, to)
				if err != nil {
					return onExistingTopic(topic, err)
				}
				if e.output == "json" {
					return printJSON(e.stdout, leaderJSON{Topic: topic, Partition: p, Leader: leader})
				}
				_, err = fmt.Fprintf(e.stdout, "%s/%d is now led by broker %d\n", topic, p, leader)
				return err
			})
		},
	}
	cmd.Flags().Uint32Var(&to, "to", 0, "node id of the replica to lead (required)")
	return cmd
}

func newPartitionMoveCmd(e *env) *cobra.Command {
	var replicas []string
	cmd := &cobra.Command{
		Use:   "move TOPIC/PARTITION --replicas NODE,NODE,...",
		Short: "Move a partition to another set of brokers",
		Long: `Change the brokers holding one partition to --replicas (the first becomes
the preferred leader). The partition stays available throughout: each new
broker is added as a non-voting replica, copies the log until it has
caught up, and is promoted; then leadership leaves any broker being
removed, the old replicas are removed, and they delete their copies.

Progress is shown as a live line on a terminal and one line per step
otherwise (on stderr with -o json, whose stdout is the final state).

The move has no time limit unless --timeout is given; Ctrl-C stops it
after its current step. A move that stopped (interrupted, a broker down)
leaves the partition consistent and possibly with extra replicas: run the
same command again to finish it.`,
		Example: `  strata partition move events/0 --replicas 2,3,4
  strata partition move events/0 --replicas 4,2,3 -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			topic, p, err := parseTopicPartition(args[0])
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("replicas") {
				return usageErrorf("--replicas NODE,NODE,... is required")
			}
			ids, err := parseNodeIDs(replicas)
			if err != nil {
				return err
			}
			return e.longAdmin(cmd, func(ctx context.Context, a *client.Admin) error {
				pr := newProgress(e)
				err := a.MovePartition(ctx, topic, p, ids, pr.show)
				pr.end()
				if err != nil {
					return onExistingTopic(topic, err)
				}
				return e.printPartition(ctx, a, topic, p)
			})
		},
	}
	cmd.Flags().StringSliceVar(&replicas, "replicas", nil, "node ids of the new replicas, comma-separated; the first is the preferred leader (required)")
	return cmd
}

// printPartition shows one partition as it is after a move: the metadata
// may not name its new leader for a moment after the move is done, so it
// asks again (for up to settleWait) rather than show no leader.
func (e *env) printPartition(ctx context.Context, a *client.Admin, topic string, p int32) error {
	deadline := time.Now().Add(settleWait)
	var pd client.PartitionDetail
	for {
		d, err := a.DescribeTopic(ctx, topic)
		if err != nil {
			return onExistingTopic(topic, err)
		}
		if int(p) >= len(d.Partitions) {
			return fmt.Errorf("%s/%d: no such partition after the move", topic, p)
		}
		pd = d.Partitions[p]
		if pd.Leader != 0 || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond): // metadata has no change notification
		}
	}
	if e.output == "json" {
		return printJSON(e.stdout, partitionToJSON(pd))
	}
	t := newTable(e.stdout, "TOPIC", "PARTITION", "LEADER", "REPLICAS", "IN-SYNC")
	t.row(topic, p, leaderCell(pd.Leader), joinIDs(pd.Replicas), joinIDs(pd.InSyncReplicas))
	if err := t.flush(); err != nil {
		return err
	}
	return e.printLagging([]client.PartitionDetail{pd})
}

// settleWait is how long printPartition waits for a moved partition's
// leader to show in the metadata.
const settleWait = 5 * time.Second

// longAdmin is admin for operations that may take minutes (moving data):
// bounded by --timeout only when it is given.
func (e *env) longAdmin(cmd *cobra.Command, fn func(context.Context, *client.Admin) error) error {
	c, err := e.newClient()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx := cmd.Context()
	if cmd.Flags().Changed("timeout") {
		var cancel context.CancelFunc
		ctx, cancel = e.limitCtx(ctx) // 0: no limit
		defer cancel()
	}
	return fn(ctx, c.Admin())
}

// progress prints a move's steps: one live line on a terminal (redrawn on
// every report), otherwise a line per new step. With -o json the lines go
// to stderr, so stdout holds only the result.
type progress struct {
	w    io.Writer
	live bool
	last string
}

// copyTenths is how far a log copy is, in tenths: a line per tenth when
// the output is not live.
func copyTenths(m client.MoveProgress) int64 {
	if m.CopyTotalBytes <= 0 {
		return -1
	}
	return min(10, m.CopiedBytes*10/m.CopyTotalBytes)
}

// catchUpDetail describes a new replica's lag: the log copy's progress
// while it copies the leader's log, else records (and bytes) behind.
func catchUpDetail(m client.MoveProgress) string {
	switch {
	case m.CopyTotalBytes > 0:
		return fmt.Sprintf(" (copying the leader's log: %s of %s, %d%%)",
			formatBytes(m.CopiedBytes), formatBytes(m.CopyTotalBytes), min(100, m.CopiedBytes*100/m.CopyTotalBytes))
	case m.Lag > 0 && m.LagBytes > 0:
		return fmt.Sprintf(" (%d records, ~%s behind)", m.Lag, formatBytes(m.LagBytes))
	case m.Lag > 0:
		return fmt.Sprintf(" (%d records behind)", m.Lag)
	case m.Lag < 0:
		return " (waiting for the replica)"
	}
	return ""
}

// formatBytes prints n bytes in binary units.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

func newProgress(e *env) *progress {
	if e.output == "json" {
		return &progress{w: e.stderr}
	}
	return &progress{w: e.stdout, live: e.isTerminal()}
}

func (p *progress) show(m client.MoveProgress) {
	line := m.Step
	if m.Topic != "" {
		line = fmt.Sprintf("%s/%d: %s", m.Topic, m.Partition, line)
	}
	if m.Total > 0 {
		line = fmt.Sprintf("[%d/%d] %s", m.Done, m.Total, line)
	}
	catching := strings.HasPrefix(m.Step, "catching up")
	if p.live {
		if catching {
			line += catchUpDetail(m)
		}
		fmt.Fprint(p.w, "\r\033[K"+line)
		return
	}
	// One line per step, and while a log copy runs one per tenth of it.
	key := line
	if catching && copyTenths(m) >= 0 {
		key = fmt.Sprintf("%s copy %d", line, copyTenths(m))
		line += catchUpDetail(m)
	}
	if key != p.last {
		fmt.Fprintln(p.w, line)
	}
	p.last = key
}

// end clears the live line.
func (p *progress) end() {
	if p.live {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

// parseTopicPartition splits "events/3".
func parseTopicPartition(s string) (string, int32, error) {
	i := strings.LastIndexByte(s, '/')
	if i <= 0 {
		return "", 0, usageErrorf("%q: want TOPIC/PARTITION, e.g. events/0", s)
	}
	p, err := strconv.ParseInt(s[i+1:], 10, 32)
	if err != nil || p < 0 {
		return "", 0, usageErrorf("%q: the partition must be a number from 0, e.g. events/0", s)
	}
	return s[:i], int32(p), nil
}

// parseNodeIDs parses "1,2,3" (already split by the flag).
func parseNodeIDs(ss []string) ([]uint32, error) {
	var out []uint32
	for _, s := range ss {
		n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
		if err != nil || n == 0 {
			return nil, usageErrorf("--replicas %q: want node ids (positive numbers), comma-separated", strings.Join(ss, ","))
		}
		out = append(out, uint32(n))
	}
	if len(out) == 0 {
		return nil, usageErrorf("--replicas: name at least one node id")
	}
	return out, nil
}

type leaderJSON struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Leader    uint32 `json:"leader"`
}
