package diskfault

import "context"

// Full is the disk-full fault, in the shape the chaos harness injects:
// Inject fills the volume, Heal frees it.
type Full struct {
	Volume *Volume
	Name   string // what the volume belongs to, e.g. "node 2"
}

// Inject fills the volume to its last byte.
func (f *Full) Inject(ctx context.Context) error { return f.Volume.Fill() }

// Heal removes the filler: the space is back.
func (f *Full) Heal(ctx context.Context) error { return f.Volume.Unfill() }

// Kind is "disk-full".
func (f *Full) Kind() string { return "disk-full" }

// Target names the broker whose disk it is.
func (f *Full) Target() string { return f.Name }
