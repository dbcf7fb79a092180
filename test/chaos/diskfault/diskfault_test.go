package diskfault

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "diskfault: tests need root (mount)")
		os.Exit(1)
	}
	goleak.VerifyTestMain(m)
}

func mounted(t *testing.T, dir string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 1 && unescape(f[1]) == dir {
			return true
		}
	}
	return false
}

// TestFillUnfillResize: a full volume refuses new data with ENOSPC and
// keeps what it holds; Unfill and Resize give room back; Close unmounts.
func TestFillUnfillResize(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vol")
	v, err := Mount(dir, 4<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	kept := filepath.Join(dir, "kept")
	if err := os.WriteFile(kept, []byte("acknowledged"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := v.Fill(); err != nil {
		t.Fatal(err)
	}
	if free, err := v.Free(); err != nil || free != 0 {
		t.Fatalf("free after Fill: %d %v", free, err)
	}
	err = os.WriteFile(filepath.Join(dir, "new"), make([]byte, 8192), 0o644)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write to a full volume: %v, want ENOSPC", err)
	}
	if b, err := os.ReadFile(kept); err != nil || string(b) != "acknowledged" {
		t.Fatalf("kept file: %q %v", b, err)
	}
	if err := v.Unfill(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "new"), make([]byte, 8192), 0o644); err != nil {
		t.Fatalf("write after Unfill: %v", err)
	}
	if err := v.Fill(); err != nil {
		t.Fatal(err)
	}
	if err := v.Resize(8 << 20); err != nil {
		t.Fatal(err)
	}
	if free, err := v.Free(); err != nil || free < 3<<20 {
		t.Fatalf("free after growing by 4 MiB: %d %v", free, err)
	}
	if err := v.Resize(1 << 20); err == nil {
		t.Fatal("shrinking below what is used succeeded")
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if mounted(t, dir) {
		t.Fatalf("%s still mounted after Close", dir)
	}
}

// TestStaleMountRemoved: Mount unmounts a volume whose process is gone.
func TestStaleMountRemoved(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(t.TempDir(), "stale")
	if err := os.Mkdir(stale, 0o755); err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf("%s%d", sourcePrefix, dead.Process.Pid)
	if err := syscall.Mount(src, stale, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	defer syscall.Unmount(stale, syscall.MNT_DETACH) // if the test fails
	v, err := Mount(filepath.Join(t.TempDir(), "vol"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if mounted(t, stale) {
		t.Fatalf("stale volume of dead pid %d still mounted on %s", dead.Process.Pid, stale)
	}
}
