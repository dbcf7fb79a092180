package chaos

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratalog/strata/pkg/client"
)

// groupWorkload is a consumer group of members that process (parse and
// check) every record of a topic and commit (auto-commit every second),
// and a sampler that reads the group's committed offsets twice a second
// and checks that none moves backwards.
type groupWorkload struct {
	group, topic string
	cancel       context.CancelFunc
	wg           sync.WaitGroup
	processed    atomic.Int64
	badValues    atomic.Int64
	pollErrs     atomic.Int64
	mu           struct {
		sync.Mutex
		committed map[int32]int64 // highest committed offset seen per partition
		backwards *counterexample
		samples   int
	}
}

func startGroup(ctx context.Context, cl *client.Client, adm *client.Admin, h *History, group, topic string, members int) *groupWorkload {
	gctx, cancel := context.WithCancel(ctx)
	g := &groupWorkload{group: group, topic: topic, cancel: cancel}
	g.mu.committed = map[int32]int64{}
	for m := range members {
		g.wg.Go(func() {
			gc, err := cl.NewGroupConsumer(group, client.Topics(topic), client.AutoCommitInterval(time.Second),
				client.FetchOpts(client.FetchMaxWait(200*time.Millisecond)))
			if err != nil {
				h.Log(time.Now(), "group-error", map[string]any{"member": m, "err": err.Error()})
				return
			}
			defer func() {
				cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer ccancel()
				if err := gc.Close(cctx); err != nil {
					h.Log(time.Now(), "group-error", map[string]any{"member": m, "err": "close: " + err.Error()})
				}
			}()
			for gctx.Err() == nil {
				recs, err := gc.Poll(gctx)
				if err != nil {
					if gctx.Err() == nil {
						g.pollErrs.Add(1)
						h.Log(time.Now(), "group-error", map[string]any{"member": m, "err": err.Error()})
					}
					continue
				}
				for _, r := range recs {
					if _, err := parseValue(r.Value); err != nil {
						g.badValues.Add(1)
					}
				}
				g.processed.Add(int64(len(recs)))
			}
		})
	}
	g.wg.Go(func() {
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-gctx.Done():
				return
			case <-tick.C:
			}
			cctx, ccancel := context.WithTimeout(gctx, 5*time.Second)
			g.sample(cctx, adm, h)
			ccancel()
		}
	})
	return g
}

// sample reads the committed offsets once and checks them against the
// highest seen before.
func (g *groupWorkload) sample(ctx context.Context, adm *client.Admin, h *History) (map[int32]int64, error) {
	offs, err := adm.FetchOffsets(ctx, g.group)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out := map[int32]int64{}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.mu.samples++
	for _, o := range offs {
		if o.Topic != g.topic || o.Offset < 0 {
			continue
		}
		p := o.Partition
		out[p] = o.Offset
		prev, seen := g.mu.committed[p]
		if seen && o.Offset < prev && g.mu.backwards == nil {
			g.mu.backwards = &counterexample{"commits", fmt.Sprintf("group %s: committed offset of %s/%d went back from %d to %d at %s", g.group, g.topic, p, prev, o.Offset, now.Format("15:04:05.000"))}
		}
		if !seen || o.Offset > prev {
			g.mu.committed[p] = o.Offset
			h.Log(now, "commit", map[string]any{"group": g.group, "topic": g.topic, "partition": p, "offset": o.Offset})
		}
	}
	return out, nil
}

// backwards returns the first committed offset seen moving back.
func (g *groupWorkload) backwards() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mu.backwards == nil {
		return nil
	}
	return g.mu.backwards
}

// waitLagZero waits until the group has committed every partition's high
// watermark (the producers must have stopped).
func (g *groupWorkload) waitLagZero(ctx context.Context, adm *client.Admin, h *History, timeout time.Duration) error {
	return waitFor(ctx, timeout, func(ctx context.Context) error {
		hw, err := highWatermarks(ctx, adm, g.topic)
		if err != nil {
			return err
		}
		offs, err := g.sample(ctx, adm, h)
		if err != nil {
			return err
		}
		var errs []error
		for p, end := range hw {
			if offs[p] != end {
				errs = append(errs, fmt.Errorf("%s/%d committed %d of %d", g.topic, p, offs[p], end))
			}
		}
		return errors.Join(errs...)
	})
}

// stop closes the members (each commits and leaves).
func (g *groupWorkload) stop() {
	g.cancel()
	g.wg.Wait()
}
