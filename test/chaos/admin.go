package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratalog/strata/pkg/client"
)

// adminStream is the admin workload: every 1.5-4.5 s (seeded) one of
// topic create, topic config alter (segment.bytes, which changes when
// segments roll and so where the nemesis finds active segments), leader
// transfer of a random partition of the main topic, and a move of a
// partition of the moves topic to a random set of live brokers. Errors
// are recorded, not failed: admin calls during faults may be refused.
type adminStream struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ok     atomic.Int64
	failed atomic.Int64
	mu     struct {
		sync.Mutex
		topics []string // topics it created
	}
}

// Each operation holds excl for reading: the run holds it for writing
// while it decommissions a broker, as an operator would not move
// partitions or create topics meanwhile (a move or a new topic can place
// a replica on the broker being emptied after the decommission planned
// its moves; see docs/operations.md, "Fault suite").
func startAdmin(ctx context.Context, cl *client.Client, c *Cluster, h *History, seed uint64, mainTopic, movesTopic string, rf int32, excl *sync.RWMutex) *adminStream {
	actx, cancel := context.WithCancel(ctx)
	a := &adminStream{cancel: cancel}
	adm := cl.Admin()
	rng := rand.New(rand.NewPCG(seed, 4000))
	a.wg.Go(func() {
		timer := time.NewTimer(time.Hour)
		defer timer.Stop()
		for n := 0; ; n++ {
			timer.Reset(1500*time.Millisecond + time.Duration(rng.Int64N(int64(3*time.Second))))
			select {
			case <-actx.Done():
				return
			case <-timer.C:
			}
			var op, detail string
			var err error
			excl.RLock()
			began := time.Now()
			octx, ocancel := context.WithTimeout(actx, 60*time.Second)
			switch k := rng.IntN(10); {
			case k == 0 && len(a.topics()) < 8:
				name := fmt.Sprintf("adm-%d", n)
				op, detail = "create-topic", name
				if _, err = adm.CreateTopic(octx, name, 2, rf, nil); err == nil {
					a.mu.Lock()
					a.mu.topics = append(a.mu.topics, name)
					a.mu.Unlock()
				}
			case k <= 2:
				size := []string{"4194304", "8388608", "16777216"}[rng.IntN(3)]
				op, detail = "alter-config", mainTopic+" segment.bytes="+size
				_, err = adm.AlterTopicConfig(octx, mainTopic, map[string]string{"segment.bytes": size}, nil)
			case k <= 6:
				op = "transfer-leader"
				desc, derr := adm.DescribeTopic(octx, mainTopic)
				if err = derr; err == nil && len(desc.Partitions) > 0 {
					p := desc.Partitions[rng.IntN(len(desc.Partitions))]
					others := slices.DeleteFunc(slices.Clone(p.Replicas), func(id uint32) bool { return id == p.Leader })
					if len(others) > 0 {
						to := others[rng.IntN(len(others))]
						detail = fmt.Sprintf("%s/%d %d->%d", mainTopic, p.Partition, p.Leader, to)
						_, err = adm.TransferLeader(octx, mainTopic, p.Partition, to)
					}
				}
			default:
				op = "move-partition"
				var live []uint32
				for _, nd := range c.Members() {
					if c.Running(nd) {
						live = append(live, nd.ID)
					}
				}
				rng.Shuffle(len(live), func(i, j int) { live[i], live[j] = live[j], live[i] })
				if len(live) >= 2 {
					p := int32(rng.IntN(2))
					to := live[:2]
					detail = fmt.Sprintf("%s/%d to %v", movesTopic, p, to)
					err = adm.MovePartition(octx, movesTopic, p, to, nil)
				}
			}
			ocancel()
			excl.RUnlock()
			f := map[string]any{"op": op, "detail": detail, "end": time.Now().UnixNano(), "ok": err == nil}
			if err != nil {
				f["err"] = err.Error()
				a.failed.Add(1)
			} else {
				a.ok.Add(1)
			}
			h.Log(began, "admin", f)
		}
	})
	return a
}

func (a *adminStream) topics() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.mu.topics)
}

func (a *adminStream) stop() {
	a.cancel()
	a.wg.Wait()
}
