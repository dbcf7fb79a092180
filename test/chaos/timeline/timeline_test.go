package timeline

import (
	"image"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// synthetic is a 120 s history at ~50 produces a second: latencies around
// 5 ms, a stall with timeouts during a kill of the leader, slower acks
// under a partition, and a pause that is never healed.
func synthetic(seed uint64) ([]Op, []Window) {
	rng := rand.New(rand.NewPCG(seed, seed))
	t0 := time.Date(2026, 12, 7, 13, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	faults := []Window{
		{Kind: "kill", Target: "node 1 (leader)", Start: at(20), End: at(30)},
		{Kind: "partition", Target: "{1} | {2,3}", Start: at(50), End: at(65)},
		{Kind: "disk-full", Target: "node 3", Start: at(80), End: at(90)},
		{Kind: "kill", Target: "node 2", Start: at(95), End: at(97)},
		{Kind: "pause", Target: "node 3", Start: at(110)}, // not healed
	}
	var ops []Op
	for s := 0.0; s < 120; s += 0.02 {
		lat := time.Duration(rng.ExpFloat64()*4e6) + time.Millisecond
		ok := true
		switch {
		case s >= 20 && s < 22.5: // the leader's ops time out
			lat, ok = 2*time.Second+time.Duration(rng.IntN(100))*time.Millisecond, false
		case s >= 50 && s < 65:
			lat *= 8
		}
		ops = append(ops, Op{At: at(s), Latency: lat, OK: ok, Bytes: 1 << 20 / 16})
	}
	return ops, faults
}

// TestRender: a synthetic history renders to a PNG of Width×Height that
// decodes, with each fault kind's shade present in the picture.
func TestRender(t *testing.T) {
	ops, faults := synthetic(1)
	path := filepath.Join(t.TempDir(), "timeline.png")
	if dir := os.Getenv("STRATA_TIMELINE_OUT"); dir != "" {
		path = filepath.Join(dir, "timeline.png") // to look at it
	}
	if err := Render(path, ops, faults); err != nil {
		t.Fatal(err)
	}
	img := decode(t, path)
	if b := img.Bounds(); b.Dx() != Width || b.Dy() != Height {
		t.Fatalf("image is %dx%d, want %dx%d", b.Dx(), b.Dy(), Width, Height)
	}
	// Every kind's band shows: somewhere the picture has the band's colour
	// blended over white.
	kinds := kindsOf(faults)
	for _, k := range kinds {
		want := blendOnWhite(palette[indexOf(kinds, k)])
		if !contains(img, want) {
			t.Errorf("no pixel of %s's shade %v", k, want)
		}
	}
}

// TestRenderEmpty: a run with no ops and no faults still gives a picture.
func TestRenderEmpty(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty.png")
	if err := Render(path, nil, nil); err != nil {
		t.Fatal(err)
	}
	if b := decode(t, path).Bounds(); b.Dx() != Width || b.Dy() != Height {
		t.Fatalf("image is %dx%d", b.Dx(), b.Dy())
	}
}

func decode(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return img
}

func indexOf(ks []string, k string) int {
	for i, x := range ks {
		if x == k {
			return i
		}
	}
	return -1
}

// blendOnWhite is a translucent colour drawn over white, as 8-bit RGB.
func blendOnWhite(c interface{ RGBA() (r, g, b, a uint32) }) [3]uint8 {
	r, g, b, a := c.RGBA() // premultiplied, 16 bit
	return [3]uint8{uint8((r + 0xffff - a) >> 8), uint8((g + 0xffff - a) >> 8), uint8((b + 0xffff - a) >> 8)}
}

// contains reports whether some pixel is within 3 of want per channel.
func contains(img image.Image, want [3]uint8) bool {
	near := func(a uint32, b uint8) bool { d := int(a>>8) - int(b); return d >= -3 && d <= 3 }
	bd := img.Bounds()
	for y := bd.Min.Y; y < bd.Max.Y; y += 2 {
		for x := bd.Min.X; x < bd.Max.X; x += 2 {
			r, g, b, _ := img.At(x, y).RGBA()
			if near(r, want[0]) && near(g, want[1]) && near(b, want[2]) {
				return true
			}
		}
	}
	return false
}
