package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/stratalog/strata/pkg/client"
)

func newClusterCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Show the cluster's brokers and health",
		Long:  `Commands about the cluster as a whole.`,
		Example: `  strata cluster info
  strata cluster health --exit-when-healthy --timeout 1m`,
	}
	cmd.AddCommand(newClusterHealthCmd(e))
	cmd.AddCommand(&cobra.Command{
		Use:   "info",
		Short: "Show the cluster id, the controller and every broker",
		Long: `Show the cluster id, the controller (the broker leading cluster metadata)
and each broker's node id, API address and state: alive, suspect (missed
heartbeats), dead or left. The controller's row is marked in the
CONTROLLER column ("controller": true in JSON).

Addresses are those of the listener this command came in on (LISTENER),
as every client is told; brokers without a listener of that name are not
listed but named after the table.`,
		Example: `  strata cluster info
  strata cluster info -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return e.admin(cmd.Context(), func(ctx context.Context, a *client.Admin) error {
				md, err := a.Metadata(ctx)
				if err != nil {
					return err
				}
				if e.output == "json" {
					out := clusterJSON{ClusterID: md.GetClusterId(), ControllerID: md.GetControllerId(), Brokers: []brokerJSON{},
						Listener: md.GetListener(), BrokersWithoutListener: md.GetBrokersWithoutListener()}
					for _, b := range md.GetBrokers() {
						out.Brokers = append(out.Brokers, brokerJSON{b.GetNodeId(), b.GetApiAddr(), b.GetHttpAddr(), b.GetState(), b.GetVersion(), b.GetNodeId() == md.GetControllerId()})
					}
					return printJSON(e.stdout, out)
				}
				fmt.Fprintf(e.stdout, "CLUSTER-ID: %s\nCONTROLLER: %d\n", md.GetClusterId(), md.GetControllerId())
				if md.GetListener() != "" {
					fmt.Fprintf(e.stdout, "LISTENER:   %s\n", md.GetListener())
				}
				fmt.Fprintln(e.stdout)
				t := newTable(e.stdout, "NODE", "API-ADDR", "HTTP-ADDR", "STATE", "VERSION", "CONTROLLER")
				for _, b := range md.GetBrokers() {
					ctl := ""
					if b.GetNodeId() == md.GetControllerId() {
						ctl = "*"
					}
					t.row(b.GetNodeId(), b.GetApiAddr(), b.GetHttpAddr(), b.GetState(), b.GetVersion(), ctl)
				}
				if err := t.flush(); err != nil {
					return err
				}
				if ids := md.GetBrokersWithoutListener(); len(ids) > 0 {
					fmt.Fprintf(e.stdout, "\nNot listed: brokers %v have no %s listener; clients that came in on it cannot reach them (give every broker the same --listeners names).\n", ids, md.GetListener())
				}
				return nil
			})
		},
	})
	return cmd
}
