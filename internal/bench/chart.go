package bench

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"strconv"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// WriteChart draws the report as a PNG of three panels against dataset size
// (comments, log scale): throughput per scenario with the two baselines as
// dashed lines, and p50 and p99 latency per scenario, both log scale.
func WriteChart(w io.Writer, rep *Report) error {
	if len(rep.Sizes) == 0 {
		return fmt.Errorf("bench: chart: nothing measured")
	}
	sizes := make([]float64, len(rep.Sizes))
	for i, s := range rep.Sizes {
		sizes[i] = float64(max(1, s.Comments))
	}
	lo, hi := sizes[0], sizes[0]
	for _, x := range sizes {
		lo, hi = math.Min(lo, x), math.Max(hi, x)
	}
	// A log axis needs a range; widen a single size by a factor either way.
	lo, hi = lo/2, hi*2

	panel := func(title, ylabel string) *plot.Plot { return newPanel(title, ylabel, rep, lo, hi) }
	rate := panel("Throughput", "requests / s")
	p50 := panel("Latency p50", "ms")
	p99 := panel("Latency p99", "ms")

	for i, sc := range Scenarios {
		var rs, l50, l99 plotter.XYs
		for j, s := range rep.Sizes {
			x := s.Scenario(sc)
			if x.Rate > 0 {
				rs = append(rs, plotter.XY{X: sizes[j], Y: x.Rate})
			}
			if x.P50 > 0 {
				l50 = append(l50, plotter.XY{X: sizes[j], Y: ms(x.P50)})
				l99 = append(l99, plotter.XY{X: sizes[j], Y: ms(x.P99)})
			}
		}
		for _, s := range []struct {
			p   *plot.Plot
			xys plotter.XYs
		}{{rate, rs}, {p50, l50}, {p99, l99}} {
			if err := addSeries(s.p, sc, s.xys, i, nil); err != nil {
				return err
			}
		}
	}
	if err := addLagAndBaselines(rep, sizes, lo, hi, rate, p50, p99); err != nil {
		return err
	}
	// Headroom above the data for the legends.
	for _, p := range []*plot.Plot{rate, p50, p99} {
		p.Y.Min, p.Y.Max = p.Y.Min/1.5, p.Y.Max*6
	}

	return writePNG(w, rate, p50, p99)
}

// addSeries adds a line with points to p, styled as the i-th series; with
// dashes, a dashed line without points.
func addSeries(p *plot.Plot, name string, xys plotter.XYs, i int, dashes []vg.Length) error {
	if len(xys) == 0 {
		return nil
	}
	l, pts, err := plotter.NewLinePoints(xys)
	if err != nil {
		return fmt.Errorf("bench: chart %s: %w", name, err)
	}
	c := plotutil.Color(i)
	if c == nil {
		c = color.Black
	}
	l.Color, l.Width = c, vg.Points(1.5)
	pts.Color, pts.Shape = c, plotutil.Shape(i)
	if dashes != nil {
		l.Dashes = dashes
		p.Add(l)
		p.Legend.Add(name, l)
		return nil
	}
	p.Add(l, pts)
	p.Legend.Add(name, l, pts)
	return nil
}

// sizeTicks labels the x axis with the measured sizes (1k, 100k, 1M).
func sizeTicks(rep *Report) plot.Ticker {
	return plot.TickerFunc(func(_, _ float64) []plot.Tick {
		var ts []plot.Tick
		for _, s := range rep.Sizes {
			ts = append(ts, plot.Tick{Value: float64(max(1, s.Comments)), Label: fmtSize(s.Comments)})
		}
		return ts
	})
}

// ticks125 labels a log axis at 1, 2 and 5 times each power of ten, so a
// range narrower than a decade still gets labels.
type ticks125 struct{}

func (ticks125) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if v < lo || v > hi {
				continue
			}
			ts = append(ts, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', -1, 64)})
		}
	}
	return ts
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// newPanel returns one of the chart's panels: log-log, dataset size on x
// (lo to hi), ylabel on y.
func newPanel(title, ylabel string, rep *Report, lo, hi float64) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "dataset size (comments)"
	p.Y.Label.Text = ylabel
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker = sizeTicks(rep)
	p.Y.Tick.Marker = ticks125{}
	p.X.Min, p.X.Max = lo, hi
	p.Legend.Top = true
	p.Legend.TextStyle.Font.Size = vg.Points(8)
	p.Add(plotter.NewGrid())
	return p
}

// addLagAndBaselines adds the propagation lag to GET to the latency panels
// and the baselines, dashed across the x range, to the throughput panel.
func addLagAndBaselines(rep *Report, sizes []float64, lo, hi float64, rate, p50, p99 *plot.Plot) error {
	// Propagation lag to GET, in the latency panels.
	var g50, g99 plotter.XYs
	for j, s := range rep.Sizes {
		if s.LagGet.Seen > 0 {
			g50 = append(g50, plotter.XY{X: sizes[j], Y: ms(s.LagGet.P50)})
			g99 = append(g99, plotter.XY{X: sizes[j], Y: ms(s.LagGet.P99)})
		}
	}
	if err := addSeries(p50, "propagation → GET", g50, len(Scenarios), nil); err != nil {
		return err
	}
	if err := addSeries(p99, "propagation → GET", g99, len(Scenarios), nil); err != nil {
		return err
	}
	dashed := []vg.Length{vg.Points(4), vg.Points(3)}
	for _, b := range []struct {
		name string
		s    *Stat
		i    int
	}{{"baseline: bare GET", rep.Bare, 0}, {"baseline: raw insert", rep.Raw, 4}} {
		if b.s == nil || b.s.Rate <= 0 {
			continue
		}
		if err := addSeries(rate, b.name, plotter.XYs{{X: lo, Y: b.s.Rate}, {X: hi, Y: b.s.Rate}}, b.i, dashed); err != nil {
			return err
		}
	}
	return nil
}

// writePNG draws the panels side by side and writes them as a PNG.
func writePNG(w io.Writer, rate, p50, p99 *plot.Plot) error {
	const width, height = 15 * vg.Inch, 5 * vg.Inch
	img := vgimg.New(width, height)
	dc := draw.New(img)
	plots := [][]*plot.Plot{{rate, p50, p99}}
	canvases := plot.Align(plots, draw.Tiles{Rows: 1, Cols: 3, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 2, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 4}, dc)
	for j, p := range plots[0] {
		p.Draw(canvases[0][j])
	}
	_, err := vgimg.PngCanvas{Canvas: img}.WriteTo(w)
	return err
}
