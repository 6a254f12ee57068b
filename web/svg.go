package web

import (
	"fmt"
	"html/template"
	"strings"

	"github.com/patchbay/patchbay/api/rolloutapi"
)

// Bar is one bar of a chart: a count that links to its list.
type Bar struct {
	Label string
	Value int
	Href  string
	Class string // p1…p4, ok, fail: the colour (style.css)
}

// barChart draws horizontal bars as SVG, each a link to its list, with
// a title and text a screen reader reads.
func barChart(title string, bars []Bar) template.HTML {
	const width, rowH, labelW, numW = 480, 28, 90, 70
	max := 0
	for _, b := range bars {
		max = maxInt(max, b.Value)
	}
	var sb strings.Builder
	h := rowH*len(bars) + 8
	fmt.Fprintf(&sb, `<svg class="chart" role="img" aria-labelledby="chart-t" viewBox="0 0 %d %d" width="100%%" preserveAspectRatio="xMinYMin meet"><title id="chart-t">%s</title>`,
		width, h, template.HTMLEscapeString(title))
	for i, b := range bars {
		y := 4 + i*rowH
		w := 0
		if max > 0 {
			w = (width - labelW - numW) * b.Value / max
		}
		if b.Value > 0 && w < 2 {
			w = 2
		}
		fmt.Fprintf(&sb, `<a href="%s"><text x="0" y="%d" class="lbl">%s</text><rect x="%d" y="%d" width="%d" height="%d" class="bar %s"><title>%s: %d</title></rect><text x="%d" y="%d" class="num">%d</text></a>`,
			template.HTMLEscapeString(b.Href), y+18, template.HTMLEscapeString(b.Label), labelW, y+3, w, rowH-8, b.Class,
			template.HTMLEscapeString(b.Label), b.Value, labelW+w+6, y+18, b.Value)
	}
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String())
}

// ringBar draws one ring's progress: succeeded, failed, in flight and
// pending hosts as one stacked bar.
func ringBar(r rolloutapi.RingStatus) template.HTML {
	ok, bad := 0, 0
	for o, n := range r.Outcomes {
		if o.Error() {
			bad += n
		} else {
			ok += n
		}
	}
	total := maxInt(r.Hosts, 1)
	const width = 300
	parts := []struct {
		n   int
		cls string
	}{{ok, "ok"}, {bad, "fail"}, {r.InFlight, "flight"}, {r.Pending, "pending"}}
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg class="ringbar" role="img" aria-label="%s: %d of %d done, %d failed, %d in flight, %d pending" viewBox="0 0 %d 14" width="%d" height="14">`,
		template.HTMLEscapeString(r.Name), ok+bad, r.Hosts, bad, r.InFlight, r.Pending, width, width)
	x := 0
	for _, p := range parts {
		w := width * p.n / total
		if p.n > 0 && w < 2 {
			w = 2
		}
		if w > 0 {
			fmt.Fprintf(&sb, `<rect x="%d" y="0" width="%d" height="14" class="%s"/>`, x, w, p.cls)
		}
		x += w
	}
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String())
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}
