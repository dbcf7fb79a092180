package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"
	"github.com/stratalog/strata/pkg/client"
)

func newBrokerCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Manage brokers",
		Long: `Commands about one broker. "strata cluster info" lists the brokers and
their node ids.`,
		Example: `  strata broker decommission 3`,
	}
	cmd.AddCommand(newBrokerDecommissionCmd(e))
	return cmd
}

func newBrokerDecommissionCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "decommission NODE",
		Short: "Move every partition replica off a broker before retiring it",
		Long: `Move every partition replica the broker NODE holds to other brokers, one
partition at a time, so that NODE can be shut down for good without any
partition losing a replica. Each replica goes to the least loaded live
broker that does not already hold that partition, and takes NODE's place
in the replica list.

The plan is made before anything moves: if some partition has no broker
to take the replica (every live broker already holds it), the command
fails naming that partition, and nothing is moved. Add a broker first.

Progress is shown as a live line on a terminal and one line per step
otherwise (on stderr with -o json). There is no time limit unless
--timeout is given; Ctrl-C stops after the current step. A decommission
that stopped leaves every partition consistent: run the same command again
to carry on. Once it is done, stop the broker.`,
		Example: `  strata broker decommission 3
  strata broker decommission 3 -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := strconv.ParseUint(args[0], 10, 32)
			if err != nil || n == 0 {
				return usageErrorf("%q: want a node id (a positive number)", args[0])
			}
			node := uint32(n)
			return e.longAdmin(cmd, func(ctx context.Context, a *client.Admin) error {
				pr := newProgress(e)
				var moved int32
				err := a.DecommissionBroker(ctx, node, func(p client.MoveProgress) {
					moved = p.Done
					pr.show(p)
				})
				pr.end()
				if err != nil {
					return err
				}
				if e.output == "json" {
					return printJSON(e.stdout, decommissionJSON{NodeID: node, PartitionsMoved: moved})
				}
				_, err = fmt.Fprintf(e.stdout, "broker %d holds no partition replicas now (%d moved); it can be stopped\n", node, moved)
				return err
			})
		},
	}
}

type decommissionJSON struct {
	NodeID          uint32 `json:"node_id"`
	PartitionsMoved int32  `json:"partitions_moved"`
}
