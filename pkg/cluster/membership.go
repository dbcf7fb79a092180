package cluster

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"
)

// Config configures gossip membership.
type Config struct {
	NodeID     NodeID
	GossipAddr string   // host:port to bind gossip (TCP and UDP) on
	Seeds      []string // --join: gossip addresses of other brokers
	Meta       Meta     // gossiped to the others
	// Local selects memberlist's loopback tuning (fast failure detection);
	// otherwise its LAN tuning.
	Local bool
	// Key, if set (16, 24 or 32 bytes), encrypts and authenticates every
	// gossip message with memberlist's keyring (AES-GCM): a broker with
	// another key or none cannot join, nor read what the others say.
	Key          []byte
	JoinInterval time.Duration // retry period while no seed answers, then of reconnecting to failed brokers; default 1s
	Logger       *zap.Logger
	// Clock is this broker's wall clock, sampled by the others (clock.go);
	// default time.Now.
	Clock func() time.Time
}

// Membership is this broker's view of the cluster through gossip.
type Membership struct {
	cfg    Config
	ml     *memberlist.Memberlist
	log    *zap.Logger
	cancel context.CancelFunc
	wg     sync.WaitGroup
	clocks *clocks

	mu struct {
		sync.Mutex
		changed chan struct{}
		// gone remembers members that left or died: memberlist's own list
		// forgets them, but the quorum must tell the two apart.
		gone map[NodeID]Member
		// leaving holds brokers that announced a graceful leave.
		// memberlist reports a leave and a failure through one callback
		// and does not say which it was.
		leaving map[NodeID]bool
	}
}

// Join starts gossip and keeps trying the seeds in the background until one
// answers; it returns at once.
func Join(cfg Config) (*Membership, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.JoinInterval <= 0 {
		cfg.JoinInterval = time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	meta, err := encodeMeta(cfg.Meta)
	if err != nil {
		return nil, err
	}
	host, portStr, err := net.SplitHostPort(cfg.GossipAddr)
	if err != nil {
		return nil, fmt.Errorf("--gossip-addr %q: %v", cfg.GossipAddr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("--gossip-addr %q: bad port", cfg.GossipAddr)
	}
	m := &Membership{cfg: cfg, log: cfg.Logger.Named("gossip"), clocks: &clocks{now: cfg.Clock, by: map[string]clockSample{}}}
	m.mu.changed = make(chan struct{})
	m.mu.gone = map[NodeID]Member{}
	m.mu.leaving = map[NodeID]bool{}

	mc := memberlist.DefaultLANConfig()
	if cfg.Local {
		mc = memberlist.DefaultLocalConfig()
	}
	mc.Name = cfg.NodeID.String()
	mc.BindAddr = host
	mc.BindPort = port
	mc.AdvertisePort = port
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		mc.AdvertiseAddr = host
	}
	if len(cfg.Key) > 0 {
		mc.SecretKey = cfg.Key
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	mc.Delegate = &delegate{meta: meta, m: m}
	mc.Events = &events{m: m}
	mc.Ping = m.clocks
	mc.Logger = zap.NewStdLog(m.log.WithOptions(zap.IncreaseLevel(zap.WarnLevel)))
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("start gossip on --gossip-addr %s: %w", cfg.GossipAddr, err)
	}
	m.ml = ml
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	if len(cfg.Seeds) > 0 {
		m.wg.Add(1)
		go m.joinLoop(ctx)
	}
	return m, nil
}

// joinLoop tries the seeds until one answers, so that brokers may start in
// any order, then reconnects to failed brokers every JoinInterval.
func (m *Membership) joinLoop(ctx context.Context) {
	defer m.wg.Done()
	t := time.NewTicker(m.cfg.JoinInterval)
	defer t.Stop()
	joined := false
	for {
		if !joined {
			seeds := m.otherSeeds()
			if len(seeds) == 0 {
				return
			}
			n, err := m.ml.Join(seeds)
			if joined = n > 0; joined {
				m.log.Info("joined the cluster", zap.Int("seeds answering", n), zap.Int("members", m.ml.NumMembers()))
			} else {
				m.log.Debug("no seed answered yet; retrying", zap.Strings("seeds", seeds), zap.Error(err))
			}
		} else {
			m.reconnect(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// reconnect asks every broker gossip holds for failed (dead, not left)
// and that accepts a connection again to exchange state with this one.
//
// Why: memberlist finds a failed member again only at a full state sync
// with it, and it syncs with one random member it believes alive every
// PushPullInterval (30 s on LAN tuning), gossiping to the dead only for
// GossipToTheDeadTime after their death. So once a partition heals, each
// side kept seeing the other as dead for up to ~30 s while Raft already
// ran between them (measured: 24-28 s with a broker isolated 20 s), and
// the controller counted it out (topic creation with RF = cluster size
// refused). Serf reconnects failed members the same way (every 30 s). A
// sync with a member that thinks this broker dead makes it refute, and
// both sides do this, so the two views meet within two rounds.
//
// Each failed broker costs a dial per round; the dial (bounded, and
// cancelled by ctx) comes first so that an unreachable broker does not
// hold memberlist's Join (up to its 10 s TCP timeout) and with it Close.
func (m *Membership) reconnect(ctx context.Context) {
	m.mu.Lock()
	var addrs []string
	for _, g := range m.mu.gone {
		if g.State == Dead {
			addrs = append(addrs, g.GossipAddr)
		}
	}
	m.mu.Unlock()
	for _, a := range addrs {
		dctx, cancel := context.WithTimeout(ctx, reconnectDialTimeout)
		c, err := (&net.Dialer{}).DialContext(dctx, "tcp", a)
		cancel()
		if err != nil {
			continue
		}
		c.Close()
		if n, err := m.ml.Join([]string{a}); n > 0 {
			m.log.Info("reconnected to a failed broker", zap.String("addr", a))
		} else {
			m.log.Debug("reconnect to a failed broker", zap.String("addr", a), zap.Error(err))
		}
	}
}

// reconnectDialTimeout bounds reconnect's probe of one failed broker.
const reconnectDialTimeout = 500 * time.Millisecond

// otherSeeds drops our own address from the seeds (every broker may be
// given the same --join list).
func (m *Membership) otherSeeds() []string {
	self := m.ml.LocalNode().Address()
	var out []string
	for _, s := range m.cfg.Seeds {
		if s != self && s != m.cfg.GossipAddr {
			out = append(out, s)
		}
	}
	return out
}

// Members returns every broker gossip knows of, this one included, and
// those that left or died since this broker started, sorted by node id.
// Members whose metadata cannot be read are left out.
func (m *Membership) Members() []Member {
	var out []Member
	live := map[NodeID]bool{}
	for _, n := range m.ml.Members() {
		mem, err := member(n)
		if err != nil {
			m.log.Warn("ignoring a gossip member", zap.String("name", n.Name), zap.Error(err))
			continue
		}
		live[mem.NodeID] = true
		out = append(out, mem)
	}
	m.mu.Lock()
	for id, g := range m.mu.gone {
		if !live[id] {
			out = append(out, g)
		}
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].NodeID < out[j].NodeID })
	return out
}

func member(n *memberlist.Node) (Member, error) {
	meta, err := decodeMeta(n.Meta)
	if err != nil {
		return Member{}, err
	}
	return Member{Meta: meta, GossipAddr: n.Address(), State: state(n.State)}, nil
}

func state(s memberlist.NodeStateType) State {
	switch s {
	case memberlist.StateAlive:
		return Alive
	case memberlist.StateSuspect:
		return Suspect
	case memberlist.StateLeft:
		return Left
	}
	return Dead
}

// Changed returns a channel closed at the next membership change.
func (m *Membership) Changed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mu.changed
}

func (m *Membership) notify() {
	m.mu.Lock()
	close(m.mu.changed)
	m.mu.changed = make(chan struct{})
	m.mu.Unlock()
}

// Addr is the bound gossip address.
func (m *Membership) Addr() string { return m.ml.LocalNode().Address() }

// Close leaves the cluster gracefully (others see this broker as left, not
// dead) and stops gossip.
func (m *Membership) Close() error {
	m.cancel()
	m.wg.Wait()
	bye := []byte(leavingPrefix + m.cfg.NodeID.String())
	for _, n := range m.ml.Members() {
		if n.Name != m.cfg.NodeID.String() {
			_ = m.ml.SendReliable(n, bye) // best effort: a missed notice makes us look dead, not lost
		}
	}
	// A leave broadcast that nobody acknowledges in time is not a failed
	// shutdown: when the whole cluster stops at once the peers are leaving
	// too. Like a missed notice, it only makes us look dead, not lost.
	if err := m.ml.Leave(2 * time.Second); err != nil {
		m.log.Warn("leave broadcast not confirmed; peers will see this broker as dead", zap.Error(err))
	}
	return m.ml.Shutdown()
}

// leavingPrefix starts the notice a broker sends before leaving.
const leavingPrefix = "strata-leaving:"

type delegate struct {
	meta []byte
	m    *Membership
}

func (d *delegate) NodeMeta(limit int) []byte { return d.meta }

func (d *delegate) NotifyMsg(b []byte) {
	s := string(b)
	if len(s) <= len(leavingPrefix) || s[:len(leavingPrefix)] != leavingPrefix {
		return
	}
	if id, err := ParseNodeID(s[len(leavingPrefix):]); err == nil {
		d.m.mu.Lock()
		d.m.mu.leaving[id] = true
		d.m.mu.Unlock()
	}
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

// events turns memberlist's callbacks into wake-ups. The callbacks run on
// memberlist's goroutines and must not block.
type events struct{ m *Membership }

func (e *events) NotifyJoin(n *memberlist.Node) {
	e.m.log.Info("member joined", zap.String("member", n.Name), zap.String("addr", n.Address()))
	if mem, err := member(n); err == nil {
		e.m.mu.Lock()
		delete(e.m.mu.gone, mem.NodeID)
		delete(e.m.mu.leaving, mem.NodeID)
		e.m.mu.Unlock()
	}
	e.m.notify()
}

func (e *events) NotifyLeave(n *memberlist.Node) {
	e.m.log.Info("member left or failed", zap.String("member", n.Name))
	if mem, err := member(n); err == nil {
		e.m.mu.Lock()
		mem.State = Dead
		if e.m.mu.leaving[mem.NodeID] {
			mem.State = Left
		}
		e.m.mu.gone[mem.NodeID] = mem
		e.m.mu.Unlock()
	}
	e.m.notify()
}

func (e *events) NotifyUpdate(n *memberlist.Node) { e.m.notify() }
