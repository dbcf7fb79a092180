// Package diskfault gives one broker a small disk: a size-limited tmpfs
// mounted on its data directory, that a test fills to the last byte and
// frees again, or grows and shrinks while the broker runs.
//
// A tmpfs rather than a loop-mounted ext4 file: it needs no losetup or
// mkfs, its size changes in place (mount -o remount,size=), and a write
// past its size fails with ENOSPC exactly as on a full disk. What it does
// not model: a file system's reserved blocks, and fsync's cost.
//
// Usage:
//
//	v, err := diskfault.Mount(dataDir, 64<<20)
//	if err != nil { ... }
//	defer v.Close()
//	// start the broker with --data-dir dataDir
//	v.Fill()    // every later write of the broker's fails with ENOSPC
//	v.Unfill()  // space again
//
// The caller's duties:
//  1. Run as root on Linux (mount(2)).
//  2. Close the volume, also on failure paths; stop the broker first, or
//     Close detaches the mount (it disappears once the broker exits).
//  3. Fill, Unfill, Resize and Close may be called from any goroutine.
//
// Mounts carry the creating process's pid in their source name
// ("strata-diskfault-<pid>"); Mount unmounts those of dead processes.
package diskfault

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

const sourcePrefix = "strata-diskfault-"

// fillerName is the file Fill writes into the volume's root.
const fillerName = ".diskfault-filler"

// Volume is one mounted tmpfs.
type Volume struct {
	dir string

	mu struct {
		sync.Mutex
		size   int64
		closed bool
	}
}

// Mount mounts a tmpfs of size bytes (rounded up to pages) on dir,
// creating dir if needed. dir must be empty.
func Mount(dir string, size int64) (*Volume, error) {
	if size <= 0 {
		return nil, fmt.Errorf("diskfault: size %d", size)
	}
	if err := unmountStale(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("diskfault: %w", err)
	}
	src := sourcePrefix + strconv.Itoa(os.Getpid())
	if err := syscall.Mount(src, dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, fmt.Sprintf("size=%d,mode=0755", size)); err != nil {
		return nil, fmt.Errorf("diskfault: mount tmpfs of %d bytes on %s: %w", size, dir, err)
	}
	v := &Volume{dir: dir}
	v.mu.size = size
	return v, nil
}

// Dir is the mount point.
func (v *Volume) Dir() string { return v.dir }

// Size is the volume's current size limit.
func (v *Volume) Size() int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.mu.size
}

// Resize changes the size limit in place; the files stay. Shrinking below
// what is used fails (EINVAL) and changes nothing.
func (v *Volume) Resize(size int64) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.mu.closed {
		return errors.New("diskfault: closed")
	}
	if err := syscall.Mount("", v.dir, "", syscall.MS_REMOUNT|syscall.MS_NOSUID|syscall.MS_NODEV, fmt.Sprintf("size=%d", size)); err != nil {
		return fmt.Errorf("diskfault: resize %s to %d bytes: %w", v.dir, size, err)
	}
	v.mu.size = size
	return nil
}

// Free is the bytes still available to writers.
func (v *Volume) Free() (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(v.dir, &st); err != nil {
		return 0, fmt.Errorf("diskfault: statfs %s: %w", v.dir, err)
	}
	return int64(st.Bavail) * st.Bsize, nil
}

// Fill writes a filler file until the volume is full: every later write
// that needs a new page fails with ENOSPC until Unfill or Resize. Writes
// that land in pages a file already has (an overwrite, or the rest of a
// partly written page) still succeed, as on a real full disk.
func (v *Volume) Fill() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.mu.closed {
		return errors.New("diskfault: closed")
	}
	f, err := os.OpenFile(filepath.Join(v.dir, fillerName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("diskfault: fill: %w", err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for len(buf) > 0 {
		// Halve the chunk at each ENOSPC: the last pages are taken one
		// by one.
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				return fmt.Errorf("diskfault: fill: %w", err)
			}
			buf = buf[:len(buf)/2]
		}
	}
	return nil
}

// Unfill removes Fill's filler file.
func (v *Volume) Unfill() error {
	if err := os.Remove(filepath.Join(v.dir, fillerName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("diskfault: unfill: %w", err)
	}
	return nil
}

// Close unmounts the volume; its files are gone. If a process still has
// files open in it, the mount is detached: gone from the path now, freed
// when the last file closes.
func (v *Volume) Close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.mu.closed {
		return nil
	}
	v.mu.closed = true
	return unmount(v.dir)
}

func unmount(dir string) error {
	err := syscall.Unmount(dir, 0)
	if errors.Is(err, syscall.EBUSY) {
		err = syscall.Unmount(dir, syscall.MNT_DETACH)
	}
	if err != nil {
		return fmt.Errorf("diskfault: unmount %s: %w", dir, err)
	}
	return nil
}

// unmountStale unmounts the volumes of processes that no longer run.
func unmountStale() error {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return fmt.Errorf("diskfault: %w", err)
	}
	defer f.Close()
	var stale []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "strata-diskfault-123 /tmp/x tmpfs rw,... 0 0"
		fs := strings.Fields(sc.Text())
		if len(fs) < 3 || fs[2] != "tmpfs" || !strings.HasPrefix(fs[0], sourcePrefix) {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimPrefix(fs[0], sourcePrefix))
		if err == nil && !alive(pid) {
			stale = append(stale, unescape(fs[1]))
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("diskfault: /proc/self/mounts: %w", err)
	}
	for _, dir := range stale {
		if err := unmount(dir); err != nil {
			return err
		}
	}
	return nil
}

// unescape undoes /proc/mounts' octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
