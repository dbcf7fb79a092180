package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestFileClock: the clock is time.Now plus the file's offset, follows a
// change of the file within the re-read period, and reads a missing file
// as no offset.
func TestFileClock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "offset")
	c := &fileClock{path: path}
	near := func(got time.Time, off time.Duration) bool {
		d := got.Sub(time.Now().Add(off))
		return d > -time.Second && d < time.Second
	}
	if got := c.now(); !near(got, 0) {
		t.Fatalf("missing file: %s, want about now", got)
	}
	if err := os.WriteFile(path, []byte("48h\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.mu.readAt = time.Time{} // as if the re-read period had passed
	if got := c.now(); !near(got, 48*time.Hour) {
		t.Fatalf("48h: %s", got)
	}
	if err := os.WriteFile(path, []byte("not a duration"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.mu.readAt = time.Time{}
	if got := c.now(); !near(got, 48*time.Hour) {
		t.Fatalf("a bad value should keep 48h: %s", got)
	}
	if err := os.WriteFile(path, []byte("-90s"), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !near(c.now(), -90*time.Second) {
		if time.Now().After(deadline) {
			t.Fatalf("-90s not read within 5s: %s", c.now())
		}
		time.Sleep(10 * time.Millisecond) // the re-read period is the condition's own clock
	}
}
