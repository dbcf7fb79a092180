package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/stratalog/strata/pkg/client"
)

// healthPoll is how often --exit-when-healthy and --watch look again.
const healthPoll = 500 * time.Millisecond

func newClusterHealthCmd(e *env) *cobra.Command {
	var exitWhenHealthy, watch bool
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Check that every broker is up and every partition has a leader and all replicas in sync",
		Long: `Check the cluster: it is healthy when every registered broker is alive and
every partition of every topic has a leader and all of its replicas in
sync. Prints a summary (BROKERS, DOWN, SUSPECT, TOPICS, PARTITIONS,
LEADERLESS, UNDER-REPLICATED, HEALTHY) and lists the brokers that are not
alive and the unhealthy partitions. A broker is down when gossip says it
is dead or left, or its raft port refuses connections (its process is
gone); suspect when it missed gossip probes (paused, cut off, or dying).
TOPICS and PARTITIONS count the internal topics too (__consumer_offsets,
which "strata topic list" leaves out): consumer groups need them healthy.

The exit status is 0 only if the cluster is healthy. With
--exit-when-healthy it checks every 500ms until the cluster is healthy,
and fails with the reason if it is not within --timeout: use it in
scripts after starting, restarting or moving things. --watch prints the
report each time it changes, until interrupted (or, with
--exit-when-healthy, until healthy).`,
		Example: `  strata cluster health
  strata cluster health --exit-when-healthy --timeout 2m
  strata cluster health --watch
  strata cluster health -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := e.newClient()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx := cmd.Context()
			if exitWhenHealthy {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, e.timeout)
				defer cancel()
			}
			if !exitWhenHealthy && !watch {
				actx, cancel := e.adminCtx(ctx)
				defer cancel()
				h, err := checkHealth(actx, c.Admin())
				if err != nil {
					return err
				}
				if err := e.printHealth(h); err != nil {
					return err
				}
				if !h.Healthy {
					return fmt.Errorf("the cluster is not healthy: %s", h.reason())
				}
				return nil
			}
			var last *healthJSON
			var lastErr error
			var shown string
			for {
				actx, cancel := e.adminCtx(ctx)
				h, err := checkHealth(actx, c.Admin())
				cancel()
				if err == nil {
					last, lastErr = h, nil
					if s := fmt.Sprint(*h); watch && s != shown {
						if err := e.printHealth(h); err != nil {
							return err
						}
						shown = s
					}
					if exitWhenHealthy && h.Healthy {
						if !watch {
							return e.printHealth(h)
						}
						return nil
					}
				} else if ctx.Err() == nil {
					lastErr = err
				}
				t := time.NewTimer(healthPoll)
				select {
				case <-t.C:
					continue
				case <-ctx.Done():
					t.Stop()
				}
				if !exitWhenHealthy || cmd.Context().Err() != nil {
					return nil // --watch ends when interrupted
				}
				if last != nil && !watch {
					if err := e.printHealth(last); err != nil {
						return err
					}
				}
				switch {
				case last != nil:
					return fmt.Errorf("the cluster is not healthy after %s: %s", e.timeout, last.reason())
				case lastErr != nil:
					return fmt.Errorf("the cluster is not healthy after %s: %w", e.timeout, lastErr)
				}
				return fmt.Errorf("the cluster is not healthy after %s", e.timeout)
			}
		},
	}
	cmd.Flags().BoolVar(&exitWhenHealthy, "exit-when-healthy", false, "check every 500ms until healthy; fail after --timeout")
	cmd.Flags().BoolVar(&watch, "watch", false, "print the report each time it changes, until interrupted")
	return cmd
}

// checkHealth counts the brokers not alive, and describes every topic and
// counts the partitions without a leader or with replicas out of sync.
func checkHealth(ctx context.Context, a *client.Admin) (*healthJSON, error) {
	md, err := a.Metadata(ctx)
	if err != nil {
		return nil, err
	}
	topics, err := a.ListTopics(ctx)
	if err != nil {
		return nil, err
	}
	h := &healthJSON{Unhealthy: []unhealthyJSON{}, BrokersNotAlive: []brokerJSON{}}
	for _, b := range md.Brokers {
		h.Brokers++
		switch b.State {
		case "alive":
			continue
		case "suspect":
			h.Suspect++
		default:
			h.Down++
		}
		h.BrokersNotAlive = append(h.BrokersNotAlive, brokerJSON{b.NodeID, b.APIAddr, b.HTTPAddr, b.State, b.Version, b.NodeID == md.ControllerID})
	}
	for _, ts := range topics {
		d, err := a.DescribeTopic(ctx, ts.Name)
		if errors.Is(err, client.ErrClosed) || ctx.Err() != nil {
			return nil, err
		}
		if err != nil {
			continue // deleted meanwhile
		}
		h.Topics++
		for _, p := range d.Partitions {
			h.Partitions++
			problem := ""
			switch {
			case p.Leader == 0:
				problem = "leaderless"
				h.Leaderless++
			case !sameIDs(p.InSyncReplicas, p.Replicas):
				problem = "under-replicated"
				h.UnderReplicated++
			}
			if problem != "" {
				h.Unhealthy = append(h.Unhealthy, unhealthyJSON{
					Topic: d.Name, Partition: p.Partition, Leader: p.Leader,
					Replicas: nonNil(p.Replicas), InSyncReplicas: nonNil(p.InSyncReplicas), Problem: problem,
				})
			}
		}
	}
	h.Healthy = h.Leaderless == 0 && h.UnderReplicated == 0 && h.Down == 0 && h.Suspect == 0 && h.Brokers > 0
	return h, nil
}

func sameIDs(a, b []uint32) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

// reason says in a few words what is unhealthy.
func (h *healthJSON) reason() string {
	var parts []string
	if h.Brokers == 0 {
		parts = append(parts, "no broker is registered yet (the cluster is still forming)")
	}
	if h.Down > 0 {
		parts = append(parts, fmt.Sprintf("%s down", brokers(h.Down)))
	}
	if h.Suspect > 0 {
		parts = append(parts, fmt.Sprintf("%s suspect", brokers(h.Suspect)))
	}
	if h.Leaderless > 0 {
		parts = append(parts, fmt.Sprintf("%s without a leader", partitions(h.Leaderless)))
	}
	if h.UnderReplicated > 0 {
		parts = append(parts, fmt.Sprintf("%s under-replicated", partitions(h.UnderReplicated)))
	}
	var names []string
	for _, b := range h.BrokersNotAlive {
		names = append(names, fmt.Sprintf("broker %d %s", b.NodeID, b.State))
	}
	for i, u := range h.Unhealthy {
		if i == 5 {
			names = append(names, "...")
			break
		}
		names = append(names, fmt.Sprintf("%s/%d", u.Topic, u.Partition))
	}
	s := strings.Join(parts, ", ")
	if len(names) > 0 {
		s += " (" + strings.Join(names, ", ") + ")"
	}
	return s
}

func brokers(n int) string {
	if n == 1 {
		return "1 broker"
	}
	return fmt.Sprintf("%d brokers", n)
}

func partitions(n int) string {
	if n == 1 {
		return "1 partition"
	}
	return fmt.Sprintf("%d partitions", n)
}

func (e *env) printHealth(h *healthJSON) error {
	if e.output == "json" {
		return printJSON(e.stdout, h)
	}
	t := newTable(e.stdout, "BROKERS", "DOWN", "SUSPECT", "TOPICS", "PARTITIONS", "LEADERLESS", "UNDER-REPLICATED", "HEALTHY")
	t.row(h.Brokers, h.Down, h.Suspect, h.Topics, h.Partitions, h.Leaderless, h.UnderReplicated, yesNo(h.Healthy))
	if err := t.flush(); err != nil {
		return err
	}
	if len(h.BrokersNotAlive) > 0 {
		fmt.Fprintln(e.stdout)
		t = newTable(e.stdout, "NODE", "API-ADDR", "STATE")
		for _, b := range h.BrokersNotAlive {
			t.row(b.NodeID, b.APIAddr, b.State)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if len(h.Unhealthy) == 0 {
		return nil
	}
	fmt.Fprintln(e.stdout)
	t = newTable(e.stdout, "TOPIC", "PARTITION", "LEADER", "REPLICAS", "IN-SYNC", "PROBLEM")
	for _, u := range h.Unhealthy {
		t.row(u.Topic, u.Partition, leaderCell(u.Leader), joinIDs(u.Replicas), joinIDs(u.InSyncReplicas), u.Problem)
	}
	return t.flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

type unhealthyJSON struct {
	Topic          string   `json:"topic"`
	Partition      int32    `json:"partition"`
	Leader         uint32   `json:"leader"`
	Replicas       []uint32 `json:"replicas"`
	InSyncReplicas []uint32 `json:"in_sync_replicas"`
	Problem        string   `json:"problem"` // leaderless or under-replicated
}

type healthJSON struct {
	Healthy bool `json:"healthy"`
	Brokers int  `json:"brokers"`
	Down    int  `json:"brokers_down"`
	Suspect int  `json:"brokers_suspect"`
	// BrokersNotAlive lists the down and suspect brokers.
	BrokersNotAlive []brokerJSON    `json:"brokers_not_alive"`
	Topics          int             `json:"topics"`
	Partitions      int             `json:"partitions"`
	Leaderless      int             `json:"leaderless"`
	UnderReplicated int             `json:"under_replicated"`
	Unhealthy       []unhealthyJSON `json:"unhealthy"`
}
