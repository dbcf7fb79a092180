package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Fault is one thing the nemesis does to the cluster and undoes. The run
// calls Inject, waits the step's hold time, then calls Heal, from one
// goroutine; a Fault is used once. Heal must leave the cluster able to
// recover by itself (a killed broker started again, a paused one
// continued, a network partition removed). Faults built elsewhere (network
// partitions in namespaces, full disks, clock skew) plug in by
// implementing these four methods.
type Fault interface {
	// Kind names the fault for the summary and the history, e.g. "kill".
	Kind() string
	// Target names what it hits, e.g. "node2" or "node1,node3".
	Target() string
	Inject(ctx context.Context) error
	Heal(ctx context.Context) error
}

// killFault: SIGKILL, and a start on the same data and ports at Heal.
type killFault struct {
	c  *Cluster
	nd *Node
}

func (f *killFault) Kind() string                     { return "kill" }
func (f *killFault) Target() string                   { return f.nd.String() }
func (f *killFault) Inject(ctx context.Context) error { return f.c.Kill(f.nd) }
func (f *killFault) Heal(ctx context.Context) error   { return f.c.Start(f.nd) }

// pauseFault: SIGSTOP, SIGCONT at Heal. The process keeps its sockets:
// peers see silence, not refusals.
type pauseFault struct {
	c  *Cluster
	nd *Node
}

func (f *pauseFault) Kind() string   { return "pause" }
func (f *pauseFault) Target() string { return f.nd.String() }
func (f *pauseFault) Inject(ctx context.Context) error {
	return f.c.Signal(f.nd, syscall.SIGSTOP)
}
func (f *pauseFault) Heal(ctx context.Context) error { return f.c.Signal(f.nd, syscall.SIGCONT) }

// restartAllFault: SIGKILL to every running broker at once, every one
// started again at Heal (a power cut of the whole cluster, with
// --fsync=always nothing acknowledged may be lost).
type restartAllFault struct {
	c      *Cluster
	killed []*Node
}

func (f *restartAllFault) Kind() string   { return "restart-all" }
func (f *restartAllFault) Target() string { return "all" }
func (f *restartAllFault) Inject(ctx context.Context) error {
	for _, nd := range f.c.Members() {
		if f.c.Running(nd) {
			if err := f.c.Kill(nd); err != nil {
				return err
			}
			f.killed = append(f.killed, nd)
		}
	}
	return nil
}
func (f *restartAllFault) Heal(ctx context.Context) error {
	errs := make(chan error, len(f.killed))
	for _, nd := range f.killed {
		go func() { errs <- f.c.Start(nd) }()
	}
	var first error
	for range f.killed {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// diskFault damages one replica's log while its broker is down: SIGKILL,
// then either a bit flipped in the middle of a partition's active
// segment ("bitflip") or the segment's tail cut at a random point
// ("truncate"), then a start at Heal. A replicated partition must
// re-fetch what was lost from its leader and abstain from votes until
// then (docs/operations.md, "Damaged logs").
type diskFault struct {
	c        *Cluster
	nd       *Node
	topics   []string
	truncate bool
	rng      *rand.Rand
	did      string // what was done, for the history
}

func (f *diskFault) Kind() string {
	if f.truncate {
		return "truncate"
	}
	return "bitflip"
}
func (f *diskFault) Target() string { return f.nd.String() }

func (f *diskFault) Inject(ctx context.Context) error {
	if err := f.c.Kill(f.nd); err != nil {
		return err
	}
	var segs []string
	for _, topic := range f.topics {
		dirs, _ := filepath.Glob(filepath.Join(f.nd.Dir, "topics", topic+"-*", "*"))
		slices.Sort(dirs)
		for _, d := range dirs {
			logs, _ := filepath.Glob(filepath.Join(d, "*.log"))
			var nonEmpty []string
			for _, l := range logs {
				if st, err := os.Stat(l); err == nil && st.Size() > 64 {
					nonEmpty = append(nonEmpty, l)
				}
			}
			if len(nonEmpty) > 0 {
				slices.Sort(nonEmpty)
				segs = append(segs, nonEmpty[len(nonEmpty)-1]) // the active segment
			}
		}
	}
	if len(segs) == 0 {
		f.did = "no segment with data"
		return nil
	}
	seg := segs[f.rng.IntN(len(segs))]
	st, err := os.Stat(seg)
	if err != nil {
		return err
	}
	rel := strings.TrimPrefix(seg, f.nd.Dir+string(filepath.Separator))
	if f.truncate {
		cut := st.Size() - 1 - f.rng.Int64N(min(st.Size()-1, 64<<10))
		f.did = fmt.Sprintf("%s cut from %d to %d bytes", rel, st.Size(), cut)
		return os.Truncate(seg, cut)
	}
	at := st.Size()/2 + f.rng.Int64N(max(st.Size()/8, 1)) - st.Size()/16
	bit := byte(1) << f.rng.IntN(8)
	fh, err := os.OpenFile(seg, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer fh.Close()
	b := make([]byte, 1)
	if _, err := fh.ReadAt(b, at); err != nil {
		return err
	}
	b[0] ^= bit
	if _, err := fh.WriteAt(b, at); err != nil {
		return err
	}
	f.did = fmt.Sprintf("%s: bit %#02x flipped at byte %d of %d", rel, bit, at, st.Size())
	return fh.Sync()
}

func (f *diskFault) Heal(ctx context.Context) error { return f.c.Start(f.nd) }

// Detail says what a disk fault changed.
func (f *diskFault) Detail() string { return f.did }

// Window is one fault's time span, for the history and the timeline.
type Window struct {
	Kind, Target string
	Start, End   time.Time
}
