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
					out := clusterJSON{ClusterID: md.ClusterID, ControllerID: md.ControllerID, Brokers: []brokerJSON{},
						Listener: md.Listener, BrokersWithoutListener: md.BrokersWithoutListener}
					for _, b := range md.Brokers {
						out.Brokers = append(out.Brokers, brokerJSON{b.NodeID, b.APIAddr, b.HTTPAddr, b.State, b.Version, b.NodeID == md.ControllerID})
					}
					return printJSON(e.stdout, out)
				}
				fmt.Fprintf(e.stdout, "CLUSTER-ID: %s\nCONTROLLER: %d\n", md.ClusterID, md.ControllerID)
				if md.Listener != "" {
					fmt.Fprintf(e.stdout, "LISTENER:   %s\n", md.Listener)
				}
				fmt.Fprintln(e.stdout)
				t := newTable(e.stdout, "NODE", "API-ADDR", "HTTP-ADDR", "STATE", "VERSION", "CONTROLLER")
				for _, b := range md.Brokers {
					ctl := ""
					if b.NodeID == md.ControllerID {
						ctl = "*"
					}
					t.row(b.NodeID, b.APIAddr, b.HTTPAddr, b.State, b.Version, ctl)
				}
				if err := t.flush(); err != nil {
					return err
				}
				if ids := md.BrokersWithoutListener; len(ids) > 0 {
					fmt.Fprintf(e.stdout, "\nNot listed: brokers %v have no %s listener; clients that came in on it cannot reach them (give every broker the same --listeners names).\n", ids, md.Listener)
				}
				return nil
			})
		},
	})
	return cmd
}
