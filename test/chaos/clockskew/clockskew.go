// Package clockskew gives one broker a skewed clock without changing the
// machine's: its wall clock through the broker's hidden
// --debug-clock-offset-file (an offset file the test rewrites while the
// broker runs), its monotonic and boot clocks through a Linux time
// namespace entered at start (unshare --time).
//
// Why these two: the broker is a static Go binary, so faketime's
// LD_PRELOAD cannot reach it, and time namespaces do not virtualize the
// wall clock (CLOCK_REALTIME), only CLOCK_MONOTONIC and CLOCK_BOOTTIME,
// whose offsets are fixed before the first process enters. The broker
// reads wall time for its decisions (retention, compaction, group expiry)
// in one place, broker.Config.Clock, which the flag sets; record
// timestamps come from producers.
//
// Usage:
//
//	f, err := clockskew.NewFile(filepath.Join(dir, "node1.clock"))
//	name, args := clockskew.Wrap(240*time.Hour, 240*time.Hour, brokerBin,
//		"--debug-clock-offset-file", f.Path(), ...)
//	cmd := exec.Command(name, args...) // or netns's Command(ctx, i, name, args...)
//	f.Set(48 * time.Hour)              // the broker's wall clock jumps 2 days ahead
//
// The caller's duties:
//  1. Run as root on Linux ≥ 5.11 with util-linux's unshare (time
//     namespaces; a process enters its new one on exec).
//  2. Start the broker with --debug-clock-offset-file naming the File.
//  3. Expect a jump to be seen within the broker's re-read period
//     (100 ms), not at once.
package clockskew

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// File is one broker's wall-clock offset file.
type File struct{ path string }

// NewFile creates the offset file at path with offset 0.
func NewFile(path string) (*File, error) {
	f := &File{path: path}
	if err := f.Set(0); err != nil {
		return nil, err
	}
	return f, nil
}

// Path is the file to give the broker's --debug-clock-offset-file.
func (f *File) Path() string { return f.path }

// Set makes the broker's wall clock run d ahead of the machine's (behind
// when d < 0). The file is replaced by a rename, so the broker never reads
// half a value.
func (f *File) Set(d time.Duration) error {
	tmp, err := os.CreateTemp(filepath.Dir(f.path), ".clock-*")
	if err != nil {
		return fmt.Errorf("clockskew: %w", err)
	}
	_, werr := tmp.WriteString(d.String() + "\n")
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("clockskew: write %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), f.path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("clockskew: %w", err)
	}
	return nil
}

// Offset reads the offset the file holds.
func (f *File) Offset() (time.Duration, error) {
	b, err := os.ReadFile(f.path)
	if err != nil {
		return 0, fmt.Errorf("clockskew: %w", err)
	}
	return time.ParseDuration(strings.TrimSpace(string(b)))
}

// Wrap returns the command line that runs name with args in a new time
// namespace whose monotonic and boot clocks read mono and boot ahead of
// the machine's (whole seconds; negative is allowed as long as the clock
// stays positive). unshare execs name in place: the started process's pid
// is the program's, so SIGKILL and SIGSTOP sent to it reach the program.
// Compose with netns: nt.Command(ctx, i, Wrap(...)).
func Wrap(mono, boot time.Duration, name string, args ...string) (string, []string) {
	secs := func(d time.Duration) string { return strconv.FormatInt(int64(d/time.Second), 10) }
	return "unshare", append([]string{"--time", "--monotonic", secs(mono), "--boottime", secs(boot), name}, args...)
}

// Jump is the wall-clock jump fault in the shape the chaos harness
// injects: Inject sets the offset, Heal sets it back to 0.
type Jump struct {
	File   *File
	Offset time.Duration
	Name   string // whose clock, e.g. "node 2"
}

// Inject makes the broker's wall clock jump by Offset.
func (j *Jump) Inject(ctx context.Context) error { return j.File.Set(j.Offset) }

// Heal sets the broker's wall clock back to the machine's.
func (j *Jump) Heal(ctx context.Context) error { return j.File.Set(0) }

// Kind is "clock-skew".
func (j *Jump) Kind() string { return "clock-skew" }

// Target names the broker.
func (j *Jump) Target() string { return j.Name }
