// Package timeline draws a fault-injection run as one PNG: acknowledged
// produce latency and throughput over time, each fault's window shaded,
// after Jepsen's latency plots, so that a stall or a gap under a fault
// shows at a glance.
//
// Usage:
//
//	err := timeline.Render(filepath.Join(runDir, "timeline.png"), ops, faults)
//
// The caller's duties:
//  1. Give every Op the time it was sent (At) and how long it took; OK
//     false for an op that failed or timed out (it is drawn in red at its
//     latency, so a timeout shows as a red row at the timeout).
//  2. Give every fault's window; an End before Start (the zero time) means
//     the fault was never healed and is shaded to the end of the history.
//  3. Render reads ops and faults only; it may be called from any goroutine.
package timeline

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"slices"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Op is one produce request as the workload saw it.
type Op struct {
	At      time.Time     // when it was sent
	Latency time.Duration // until its ack or its failure
	OK      bool          // acknowledged
	Bytes   int           // payload bytes it carried
}

// Window is one fault, from injection to heal.
type Window struct {
	Kind, Target string // e.g. "kill", "node 2"
	Start, End   time.Time
}

// Width and Height are the PNG's size in pixels.
const Width, Height = 1600, 900

const dpi = 96

// minLatency is the floor of the log-scale latency axis: a latency below it
// (or zero) is drawn at it.
const minLatency = 0.01 // ms

// Render writes the timeline of ops and faults as a PNG file at path.
func Render(path string, ops []Op, faults []Window) error {
	start, end := span(ops, faults)
	x := func(t time.Time) float64 { return t.Sub(start).Seconds() }
	xmax := math.Max(x(end), 1)

	kinds := kindsOf(faults)
	// Bands first, then the grid, then the data: a plot draws in Add order.
	lat, thr := plot.New(), plot.New()
	for _, p := range []*plot.Plot{lat, thr} {
		p.X.Min, p.X.Max = 0, xmax
		p.X.Tick.Marker = secondTicks{}
		for _, w := range faults {
			e := w.End
			if e.Before(w.Start) {
				e = end
			}
			p.Add(&band{from: x(w.Start), to: x(e), color: kindColor(kinds, w.Kind)})
		}
		p.Add(plotter.NewGrid())
	}
	if err := addLatency(lat, ops, x); err != nil {
		return err
	}
	if err := addThroughput(thr, ops, start, xmax); err != nil {
		return err
	}
	for _, k := range kinds {
		lat.Legend.Add(k, &band{color: kindColor(kinds, k)})
	}
	lat.Title.Text = fmt.Sprintf("produce latency and throughput from %s (%d ops, %d faults)", start.UTC().Format("2006-01-02 15:04:05 MST"), len(ops), len(faults))
	thr.X.Label.Text = "seconds since " + start.UTC().Format("15:04:05")

	img := vgimg.NewWith(vgimg.UseWH(px(Width), px(Height)), vgimg.UseDPI(dpi))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: px(10), PadBottom: px(10), PadLeft: px(10), PadRight: px(20), PadY: px(10)}
	grid := [][]*plot.Plot{{lat}, {thr}}
	cs := plot.Align(grid, tiles, dc)
	lat.Draw(cs[0][0])
	thr.Draw(cs[1][0])

	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("timeline: %w", err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("timeline: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("timeline: %w", err)
	}
	return nil
}

func px(n int) vg.Length { return vg.Length(n) * vg.Inch / dpi }

// span is the time range the plot covers: every op (to its end) and every
// fault window.
func span(ops []Op, faults []Window) (start, end time.Time) {
	for _, o := range ops {
		if start.IsZero() || o.At.Before(start) {
			start = o.At
		}
		if e := o.At.Add(o.Latency); e.After(end) {
			end = e
		}
	}
	for _, w := range faults {
		if start.IsZero() || w.Start.Before(start) {
			start = w.Start
		}
		if w.End.After(end) {
			end = w.End
		}
	}
	if start.IsZero() {
		start = time.Unix(0, 0)
	}
	if end.Before(start) {
		end = start
	}
	return start, end
}

func addLatency(p *plot.Plot, ops []Op, x func(time.Time) float64) error {
	p.Y.Label.Text = "latency (ms, log)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	p.Legend.XOffs, p.Legend.YOffs = -px(10), -px(26) // inside the data area, below the title
	var ok, failed plotter.XYs
	ymax := 1.0
	for _, o := range ops {
		ms := math.Max(float64(o.Latency)/float64(time.Millisecond), minLatency)
		ymax = math.Max(ymax, ms)
		pt := plotter.XY{X: x(o.At), Y: ms}
		if o.OK {
			ok = append(ok, pt)
		} else {
			failed = append(failed, pt)
		}
	}
	// Log axes need positive bounds; a decade above the slowest op leaves
	// room for the legend.
	p.Y.Min, p.Y.Max = minLatency, math.Pow(10, math.Ceil(math.Log10(ymax))+1)
	for _, s := range []struct {
		pts    plotter.XYs
		name   string
		color  color.Color
		radius float64 // pixels
	}{
		{ok, "acknowledged", color.RGBA{R: 0x1f, G: 0x4e, B: 0x9a, A: 0xff}, 1.2},
		{failed, "failed", color.RGBA{R: 0xd6, G: 0x1e, B: 0x1e, A: 0xff}, 2},
	} {
		if len(s.pts) == 0 {
			continue
		}
		sc, err := plotter.NewScatter(s.pts)
		if err != nil {
			return fmt.Errorf("timeline: %s: %w", s.name, err)
		}
		sc.GlyphStyle.Color = s.color
		sc.GlyphStyle.Radius = vg.Length(s.radius) * vg.Inch / dpi
		sc.GlyphStyle.Shape = draw.CircleGlyph{}
		p.Add(sc)
		p.Legend.Add(fmt.Sprintf("%s (%d)", s.name, len(s.pts)), sc)
	}
	return nil
}

// addThroughput draws the acknowledged bytes per second, one point per
// whole second of the history (a last partial second left out), zeros
// included so that a stall drops to 0.
func addThroughput(p *plot.Plot, ops []Op, start time.Time, xmax float64) error {
	p.Y.Label.Text = "acknowledged MB/s"
	secs := int(xmax)
	mb := make([]float64, secs)
	for _, o := range ops {
		if o.OK {
			// Counted in the second it was acknowledged.
			if i := int(o.At.Add(o.Latency).Sub(start) / time.Second); i >= 0 && i < secs {
				mb[i] += float64(o.Bytes) / 1e6
			}
		}
	}
	pts := make(plotter.XYs, secs)
	ymax := 0.0
	for i := range secs {
		pts[i] = plotter.XY{X: float64(i) + 0.5, Y: mb[i]}
		ymax = math.Max(ymax, mb[i])
	}
	p.Y.Min, p.Y.Max = 0, math.Max(ymax*1.1, 1)
	if secs > 0 {
		l, err := plotter.NewLine(pts)
		if err != nil {
			return fmt.Errorf("timeline: throughput: %w", err)
		}
		l.LineStyle.Width = px(2)
		l.LineStyle.Color = color.RGBA{R: 0x1f, G: 0x4e, B: 0x9a, A: 0xff}
		p.Add(l)
	}
	return nil
}

// band shades the plot's whole height between two x values: one fault's
// window. It has no data range, so it does not widen the axes.
type band struct {
	from, to float64
	color    color.Color
}

func (b *band) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	x0, x1 := trX(b.from), trX(b.to)
	if x1-x0 < px(2) { // a short fault still shows
		x1 = x0 + px(2)
	}
	r := vg.Rectangle{Min: vg.Point{X: max(x0, c.Min.X), Y: c.Min.Y}, Max: vg.Point{X: min(x1, c.Max.X), Y: c.Max.Y}}
	if r.Max.X <= r.Min.X {
		return
	}
	c.FillPolygon(b.color, []vg.Point{r.Min, {X: r.Max.X, Y: r.Min.Y}, r.Max, {X: r.Min.X, Y: r.Max.Y}})
}

func (b *band) Thumbnail(c *draw.Canvas) {
	c.FillPolygon(b.color, []vg.Point{c.Min, {X: c.Max.X, Y: c.Min.Y}, c.Max, {X: c.Min.X, Y: c.Max.Y}})
}

// secondTicks labels the time axis every 1, 2, 5, 10, 15, 30 or 60·k
// seconds, whichever gives 10 to 25 labels, with unlabelled minor ticks at
// a fifth of that.
type secondTicks struct{}

func (secondTicks) Ticks(lo, hi float64) []plot.Tick {
	step := 1.0
	for _, s := range []float64{1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200} {
		step = s
		if (hi-lo)/s <= 25 {
			break
		}
	}
	var ticks []plot.Tick
	for i := math.Ceil(lo/step*5) * step / 5; i <= hi; i += step / 5 {
		t := plot.Tick{Value: i}
		if math.Abs(math.Mod(i, step)) < 1e-9 {
			t.Label = fmt.Sprint(i)
		}
		ticks = append(ticks, t)
	}
	return ticks
}

// kindsOf lists the fault kinds in order of first appearance.
func kindsOf(faults []Window) []string {
	var kinds []string
	for _, w := range faults {
		if !slices.Contains(kinds, w.Kind) {
			kinds = append(kinds, w.Kind)
		}
	}
	return kinds
}

// palette holds distinct hues (ColorBrewer Set1, then Dark2 and others),
// mostly transparent: light shades under the data, and overlapping faults
// show both.
var palette = []color.NRGBA{
	{0xe4, 0x1a, 0x1c, 0x40}, {0x37, 0x7e, 0xb8, 0x40}, {0x4d, 0xaf, 0x4a, 0x40}, {0x98, 0x4e, 0xa3, 0x40},
	{0xff, 0x7f, 0x00, 0x40}, {0xe6, 0xc8, 0x00, 0x50}, {0xa6, 0x56, 0x28, 0x40}, {0xf7, 0x81, 0xbf, 0x40},
	{0x1b, 0x9e, 0x77, 0x40}, {0x66, 0x66, 0x66, 0x40}, {0x80, 0xb1, 0xd3, 0x60}, {0xbe, 0xba, 0xda, 0x60},
}

func kindColor(kinds []string, kind string) color.Color {
	return palette[slices.Index(kinds, kind)%len(palette)]
}
