package monthly

import (
	"fmt"
	"html"
	"math"
	"strings"
	"time"
)

// Line is one named line of a chart.
type Line struct {
	Name   string
	Points []Point
}

// Point is one value at a time.
type Point struct {
	At    time.Time
	Value float64
}

// palette colours the lines, in order (readable on white, and apart for
// the common colour blindnesses).
var palette = []string{"#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#f0e442"}

const (
	chartW, chartH         = 640, 240
	padL, padR, padT, padB = 56, 16, 16, 48
)

// lineChart draws lines over time as an SVG element; format writes a
// value for the axis.
func lineChart(title string, lines []Line, format func(float64) string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart line" role="img" aria-label="%s" viewBox="0 0 %d %d" width="%d" height="%d" xmlns="http://www.w3.org/2000/svg">`,
		html.EscapeString(title), chartW, chartH, chartW, chartH)
	var t0, t1 time.Time
	lo, hi := 0.0, 0.0
	n := 0
	for _, l := range lines {
		for _, p := range l.Points {
			if t0.IsZero() || p.At.Before(t0) {
				t0 = p.At
			}
			if p.At.After(t1) {
				t1 = p.At
			}
			hi = math.Max(hi, p.Value)
			n++
		}
	}
	if n == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" class="empty">no data in the period</text></svg>`, chartW/2-60, chartH/2)
		return b.String()
	}
	hi = niceCeil(hi)
	span := t1.Sub(t0)
	x := func(t time.Time) float64 {
		if span <= 0 {
			return padL + float64(chartW-padL-padR)/2
		}
		return padL + float64(chartW-padL-padR)*float64(t.Sub(t0))/float64(span)
	}
	y := func(v float64) float64 { return float64(chartH-padB) - float64(chartH-padT-padB)*(v-lo)/(hi-lo) }
	// Grid and the value axis.
	for i := 0; i <= 5; i++ {
		v := lo + (hi-lo)*float64(i)/5
		fmt.Fprintf(&b, `<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`, padL, chartW-padR, y(v), y(v))
		fmt.Fprintf(&b, `<text class="tick" x="%d" y="%.1f" text-anchor="end" font-size="11">%s</text>`, padL-6, y(v)+4, html.EscapeString(format(v)))
	}
	// The time axis: first, middle and last dates.
	for i, t := range []time.Time{t0, t0.Add(span / 2), t1} {
		anchor := []string{"start", "middle", "end"}[i]
		fmt.Fprintf(&b, `<text class="tick" x="%.1f" y="%d" text-anchor="%s" font-size="11">%s</text>`, x(t), chartH-padB+16, anchor, t.UTC().Add(-time.Nanosecond).Format("2006-01-02"))
	}
	for i, l := range lines {
		c := palette[i%len(palette)]
		var pts []string
		for _, p := range l.Points {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(p.At), y(p.Value)))
		}
		fmt.Fprintf(&b, `<polyline class="series" data-name="%s" fill="none" stroke="%s" stroke-width="2" points="%s"/>`, html.EscapeString(l.Name), c, strings.Join(pts, " "))
		if len(l.Points) == 1 {
			fmt.Fprintf(&b, `<circle cx="%s" r="3" fill="%s"/>`, strings.Replace(pts[0], ",", `" cy="`, 1), c)
		}
		lx := padL + i*110
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text class="legend" x="%d" y="%d" font-size="11">%s</text>`,
			lx, chartH-18, c, lx+14, chartH-9, html.EscapeString(l.Name))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// Bar is one bar of a bar chart.
type Bar struct {
	Name  string
	Value float64
	Label string // written at the bar's end
}

// barChart draws horizontal bars from 0 to max.
func barChart(title string, bars []Bar, max float64) string {
	var b strings.Builder
	h := padT + 24*len(bars) + 8
	if len(bars) == 0 {
		h = 60
	}
	fmt.Fprintf(&b, `<svg class="chart bar" role="img" aria-label="%s" viewBox="0 0 %d %d" width="%d" height="%d" xmlns="http://www.w3.org/2000/svg">`,
		html.EscapeString(title), chartW, h, chartW, h)
	if len(bars) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="30" class="empty">no data in the period</text></svg>`, chartW/2-60)
		return b.String()
	}
	const left = 140
	w := float64(chartW - left - 80)
	for i, br := range bars {
		y := padT + 24*i
		bw := 0.0
		if max > 0 {
			bw = w * math.Min(br.Value, max) / max
		}
		fmt.Fprintf(&b, `<text class="name" x="%d" y="%d" text-anchor="end" font-size="12">%s</text>`, left-8, y+14, html.EscapeString(br.Name))
		fmt.Fprintf(&b, `<rect class="bar" data-name="%s" x="%d" y="%d" width="%.1f" height="18" fill="%s"/>`, html.EscapeString(br.Name), left, y, bw, palette[0])
		fmt.Fprintf(&b, `<text class="value" x="%.1f" y="%d" font-size="12">%s</text>`, float64(left)+bw+6, y+14, html.EscapeString(br.Label))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (1 for 0).
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}
