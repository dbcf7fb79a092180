package replication

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/stratalog/strata/pkg/replication/transport"
)

// nopFSM is a raft FSM that keeps nothing.
type nopFSM struct{}

func (nopFSM) Apply(*raft.Log) any                 { return nil }
func (nopFSM) Snapshot() (raft.FSMSnapshot, error) { return nopSnap{}, nil }
func (nopFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

type nopSnap struct{}

func (nopSnap) Persist(s raft.SnapshotSink) error { return s.Close() }
func (nopSnap) Release()                          {}

// campaignCluster is three raft nodes over real transport Muxes.
type campaignCluster struct {
	muxes []*transport.Mux
	trs   []*transport.Transport
	rafts []*raft.Raft
}

func newCampaignCluster(t *testing.T) *campaignCluster {
	t.Helper()
	c := &campaignCluster{}
	var servers []raft.Server
	for i := range 3 {
		m, err := transport.Listen("127.0.0.1:0", transport.Options{HeartbeatInterval: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		c.muxes = append(c.muxes, m)
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(fmt.Sprint(i + 1)), Address: m.Addr()})
	}
	for i, m := range c.muxes {
		tr, err := m.Transport("g")
		if err != nil {
			t.Fatal(err)
		}
		conf := raft.DefaultConfig()
		conf.LocalID = servers[i].ID
		// A long timeout: nothing but Campaign elects a new leader within
		// the test's bounds once the first one is settled.
		conf.HeartbeatTimeout, conf.ElectionTimeout, conf.LeaderLeaseTimeout = 3*time.Second, 3*time.Second, 3*time.Second
		conf.LogOutput, conf.LogLevel = io.Discard, "ERROR"
		logs, stable, snaps := raft.NewInmemStore(), raft.NewInmemStore(), raft.NewInmemSnapshotStore()
		if err := raft.BootstrapCluster(conf, logs, stable, snaps, tr, raft.Configuration{Servers: servers}); err != nil {
			t.Fatal(err)
		}
		r, err := raft.NewRaft(conf, nopFSM{}, logs, stable, snaps, tr)
		if err != nil {
			t.Fatal(err)
		}
		c.trs = append(c.trs, tr)
		c.rafts = append(c.rafts, r)
	}
	t.Cleanup(func() {
		for i, r := range c.rafts {
			StopHeartbeats(c.trs[i])
			r.Shutdown().Error()
		}
		for _, m := range c.muxes {
			m.Close()
		}
	})
	return c
}

func (c *campaignCluster) leader(t *testing.T) int {
	t.Helper()
	l := -1
	waitFor(t, 20*time.Second, "a leader followed by both others", func() bool {
		l = -1
		for i, r := range c.rafts {
			if r.State() == raft.Leader {
				l = i
			}
		}
		if l < 0 {
			return false
		}
		for i, r := range c.rafts {
			if addr, _ := r.LeaderWithID(); i != l && addr != c.muxes[l].Addr() {
				return false
			}
		}
		return true
	})
	return l
}

func (c *campaignCluster) successor(i int) Successor {
	return Successor{Raft: c.rafts[i], Self: raft.ServerID(fmt.Sprint(i + 1)), Transport: c.trs[i]}
}

// TestCampaignSparesALiveLeader: news that the leader is gone, followed
// by a heartbeat from it, starts no election.
func TestCampaignSparesALiveLeader(t *testing.T) {
	c := newCampaignCluster(t)
	l := c.leader(t)
	f := (l + 1) % 3
	term := c.rafts[l].CurrentTerm()
	s := c.successor(f)
	cand, ok, err := s.Candidacy(c.muxes[l].Addr(), time.Now(), allLive)
	if err != nil || !ok {
		t.Fatalf("a follower of the leader is not a successor: ok=%v err=%v", ok, err)
	}
	waitFor(t, 5*time.Second, "a heartbeat after the news", func() bool {
		return c.rafts[f].LastContact().After(cand.Since)
	})
	campaigned, err := s.Campaign(context.Background(), cand)
	if err != nil || campaigned {
		t.Fatalf("campaigned=%v err=%v against a leader that is alive", campaigned, err)
	}
	if c.rafts[l].State() != raft.Leader || c.rafts[l].CurrentTerm() != term {
		t.Fatalf("the leader lost its term %d (now %s in term %d)", term, c.rafts[l].State(), c.rafts[l].CurrentTerm())
	}
}

// TestCampaignReplacesAGoneLeader: with the leader's node gone, the first
// successor campaigns and a new leader is elected long before raft's own
// 3 s timeout could.
func TestCampaignReplacesAGoneLeader(t *testing.T) {
	c := newCampaignCluster(t)
	l := c.leader(t)
	gone := c.muxes[l].Addr()
	term := c.rafts[l].CurrentTerm()
	StopHeartbeats(c.trs[l])
	c.rafts[l].Shutdown().Error()
	c.muxes[l].Close()

	// As the broker does (broker/failover.go): by rank, one step apart.
	start := time.Now()
	var turns []Successor
	var cands []Candidacy
	for i := range c.rafts {
		if i == l {
			continue
		}
		cand, ok, err := c.successor(i).Candidacy(gone, time.Now(), allLive)
		if err != nil || !ok {
			t.Fatalf("node %d is not a successor of the gone leader: ok=%v err=%v", i+1, ok, err)
		}
		for len(turns) <= cand.Rank {
			turns, cands = append(turns, Successor{}), append(cands, Candidacy{})
		}
		turns[cand.Rank], cands[cand.Rank] = c.successor(i), cand
	}
	if len(turns) != 2 || turns[0].Raft == nil || turns[1].Raft == nil {
		t.Fatalf("want successors ranked 0 and 1, got %+v", cands)
	}
	campaigned, err := turns[0].Campaign(context.Background(), cands[0])
	if err != nil || !campaigned {
		t.Fatalf("the first successor did not campaign: campaigned=%v err=%v", campaigned, err)
	}
	time.Sleep(300 * time.Millisecond) // the broker's step between ranks, not a wait for a condition
	if _, err := turns[1].Campaign(context.Background(), cands[1]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "a new leader within 2 s (raft's own timeout is 3-6 s)", func() bool {
		for i, r := range c.rafts {
			if i != l && r.State() == raft.Leader && r.CurrentTerm() > term {
				return true
			}
		}
		return false
	})
	t.Logf("new leader %s after the old one stopped", time.Since(start).Round(time.Millisecond))
}

func allLive(raft.ServerAddress) bool { return true }

// TestCandidacyNeedsAMajorityUp: a follower that sees no majority of its
// group's voters up does not campaign, and voters that are down take no
// turn.
func TestCandidacyNeedsAMajorityUp(t *testing.T) {
	c := newCampaignCluster(t)
	l := c.leader(t)
	gone := c.muxes[l].Addr()
	f1, f2 := (l+1)%3, (l+2)%3
	// The leader's broker is gone and so, as f1 sees it, is f2's: one
	// voter of three is up, f1 itself.
	onlySelf := func(raft.ServerAddress) bool { return false }
	if _, ok, err := c.successor(f1).Candidacy(gone, time.Now(), onlySelf); err != nil || ok {
		t.Fatalf("a follower alone became a successor: ok=%v err=%v", ok, err)
	}
	// With f2 up, the two survivors rank in configuration order.
	ranks := map[int]int{}
	for _, f := range []int{f1, f2} {
		cand, ok, err := c.successor(f).Candidacy(gone, time.Now(), allLive)
		if err != nil || !ok {
			t.Fatalf("node %d is not a successor: ok=%v err=%v", f+1, ok, err)
		}
		ranks[f] = cand.Rank
	}
	if ranks[f1]+ranks[f2] != 1 || ranks[min(f1, f2)] != 0 {
		t.Fatalf("ranks %v: want 0 for the first survivor in configuration order, 1 for the next", ranks)
	}
	// A follower that still hears the leader it is asked about is no
	// successor of another.
	if _, ok, _ := c.successor(f1).Candidacy("", time.Now(), allLive); ok {
		t.Fatal("a follower with a known leader is a successor for an unknown one")
	}
}
