package transport

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// countFSM records the commands it applies, in order.
type countFSM struct {
	mu   sync.Mutex
	cmds []string
}

func (f *countFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = append(f.cmds, string(l.Data))
	return len(f.cmds)
}

func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &countSnapshot{n: len(f.cmds)}, nil
}

func (f *countFSM) Restore(rc io.ReadCloser) error { return rc.Close() }

func (f *countFSM) applied() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.cmds...)
}

type countSnapshot struct{ n int }

func (s *countSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := fmt.Fprintf(sink, "%d", s.n); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *countSnapshot) Release() {}

// cluster is nodes Muxes and, per group, one raft per node.
type cluster struct {
	t      testing.TB
	muxes  []*Mux
	groups []string
	rafts  map[string][]*raft.Raft
	trans  map[string][]*Transport
	fsms   map[string][]*countFSM
}

type timing struct {
	heartbeat, election, lease, commit time.Duration
}

var fastTiming = timing{heartbeat: 300 * time.Millisecond, election: 300 * time.Millisecond, lease: 150 * time.Millisecond, commit: 50 * time.Millisecond}

func newMuxes(t testing.TB, n int, opts Options) []*Mux {
	t.Helper()
	var muxes []*Mux
	for i := 0; i < n; i++ {
		m, err := Listen("127.0.0.1:0", opts)
		if err != nil {
			t.Fatal(err)
		}
		muxes = append(muxes, m)
	}
	return muxes
}

func newCluster(t testing.TB, nodes, groups int, tm timing) *cluster {
	t.Helper()
	return newClusterOpts(t, nodes, groups, tm, Options{})
}

func newClusterOpts(t testing.TB, nodes, groups int, tm timing, opts Options) *cluster {
	t.Helper()
	c := &cluster{t: t, rafts: map[string][]*raft.Raft{}, trans: map[string][]*Transport{}, fsms: map[string][]*countFSM{}}
	c.muxes = newMuxes(t, nodes, opts)
	t.Cleanup(c.close)
	var servers []raft.Server
	for i, m := range c.muxes {
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(fmt.Sprint(i + 1)), Address: m.Addr()})
	}
	for g := 0; g < groups; g++ {
		name := fmt.Sprintf("topic-%d/0", g)
		c.groups = append(c.groups, name)
		for i, m := range c.muxes {
			tr, err := m.Transport(name)
			if err != nil {
				t.Fatal(err)
			}
			conf := raft.DefaultConfig()
			conf.LocalID = raft.ServerID(fmt.Sprint(i + 1))
			conf.HeartbeatTimeout = tm.heartbeat
			conf.ElectionTimeout = tm.election
			conf.LeaderLeaseTimeout = tm.lease
			conf.CommitTimeout = tm.commit
			conf.LogOutput = io.Discard
			conf.LogLevel = "ERROR"
			logs, stable, snaps := raft.NewInmemStore(), raft.NewInmemStore(), raft.NewInmemSnapshotStore()
			if err := raft.BootstrapCluster(conf, logs, stable, snaps, tr, raft.Configuration{Servers: servers}); err != nil {
				t.Fatal(err)
			}
			fsm := &countFSM{}
			r, err := raft.NewRaft(conf, fsm, logs, stable, snaps, tr)
			if err != nil {
				t.Fatal(err)
			}
			c.rafts[name] = append(c.rafts[name], r)
			c.trans[name] = append(c.trans[name], tr)
			c.fsms[name] = append(c.fsms[name], fsm)
		}
	}
	return c
}

func (c *cluster) close() {
	var wg sync.WaitGroup
	for _, rs := range c.rafts {
		for _, r := range rs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.Shutdown().Error()
			}()
		}
	}
	wg.Wait()
	for _, m := range c.muxes {
		m.Close()
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not a wait for the condition
	}
}

// leader returns the index of the node leading group, or -1. With exclude
// set, that node is not considered.
func (c *cluster) leader(group string, exclude int) int {
	for i, r := range c.rafts[group] {
		if i != exclude && r.State() == raft.Leader {
			return i
		}
	}
	return -1
}

func (c *cluster) waitLeaders(d time.Duration) {
	c.t.Helper()
	waitFor(c.t, d, "every group has a leader", func() bool {
		for _, g := range c.groups {
			if c.leader(g, -1) < 0 {
				return false
			}
		}
		return true
	})
}

func TestManyGroups(t *testing.T) {
	const groups, entries = 30, 100
	c := newCluster(t, 3, groups, fastTiming)
	c.waitLeaders(20 * time.Second)

	var wg sync.WaitGroup
	errs := make(chan error, groups)
	for _, g := range c.groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < entries; i++ {
				for attempt := 0; ; attempt++ {
					l := c.leader(g, -1)
					if l < 0 {
						time.Sleep(20 * time.Millisecond)
						continue
					}
					err := c.rafts[g][l].Apply([]byte(fmt.Sprintf("%s#%d", g, i)), 5*time.Second).Error()
					if err == nil {
						break
					}
					if attempt > 20 {
						errs <- fmt.Errorf("group %s entry %d: %w", g, i, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, g := range c.groups {
		// Wait for the last entry, not for a count: a retried Apply may
		// have committed an entry twice.
		last := fmt.Sprintf("%s#%d", g, entries-1)
		waitFor(t, 10*time.Second, "every FSM of "+g+" applies its entries", func() bool {
			for _, f := range c.fsms[g] {
				got := f.applied()
				if len(got) < entries || !slices.Contains(got, last) {
					return false
				}
			}
			return true
		})
		for node, f := range c.fsms[g] {
			got := f.applied()
			// A retried Apply may have committed twice; each entry
			// belongs to this group and all appear in order.
			seen := 0
			for _, cmd := range got {
				if !strings.HasPrefix(cmd, g+"#") {
					t.Fatalf("group %s node %d applied %q: misrouted", g, node, cmd)
				}
				if cmd == fmt.Sprintf("%s#%d", g, seen) {
					seen++
				}
			}
			if seen != entries {
				t.Fatalf("group %s node %d applied %d of %d entries in order: %v", g, node, seen, entries, got)
			}
			if first := c.fsms[g][0].applied(); fmt.Sprint(first) != fmt.Sprint(got) {
				t.Fatalf("group %s: node %d diverges from node 0", g, node)
			}
		}
	}
}

func TestBlockLeader(t *testing.T) {
	const groups = 4
	c := newCluster(t, 3, groups, fastTiming)
	c.waitLeaders(20 * time.Second)
	g := c.groups[0]
	old := c.leader(g, -1)
	if err := c.rafts[g][old].Apply([]byte("before"), 5*time.Second).Error(); err != nil {
		t.Fatal(err)
	}

	// Partition the old leader from both others, both ways.
	oldAddr := c.muxes[old].Addr()
	for i, m := range c.muxes {
		if i != old {
			m.Block(oldAddr)
			c.muxes[old].Block(m.Addr())
		}
	}
	var newLeader int
	waitFor(t, 20*time.Second, "a new leader among the other two", func() bool {
		newLeader = c.leader(g, old)
		return newLeader >= 0
	})
	if err := c.rafts[g][newLeader].Apply([]byte("majority"), 5*time.Second).Error(); err != nil {
		t.Fatalf("apply on the new leader: %v", err)
	}
	// The isolated node cannot commit: no split brain.
	if err := c.rafts[g][old].Apply([]byte("minority"), time.Second).Error(); err == nil {
		t.Fatal("the isolated old leader committed an entry")
	}

	for _, m := range c.muxes {
		m.UnblockAll()
	}
	waitFor(t, 20*time.Second, "the old leader follows and catches up", func() bool {
		if c.rafts[g][old].State() == raft.Leader && c.leader(g, old) >= 0 {
			return false
		}
		l := c.leader(g, -1)
		if l < 0 {
			return false
		}
		want := fmt.Sprint(c.fsms[g][l].applied())
		for _, f := range c.fsms[g] {
			if fmt.Sprint(f.applied()) != want {
				return false
			}
		}
		return true
	})
	for node, f := range c.fsms[g] {
		for _, cmd := range f.applied() {
			if cmd == "minority" {
				t.Fatalf("node %d applied the minority's entry", node)
			}
		}
		if got := f.applied(); len(got) != 2 || got[0] != "before" || got[1] != "majority" {
			t.Fatalf("node %d applied %v, want [before majority]", node, got)
		}
	}
}
