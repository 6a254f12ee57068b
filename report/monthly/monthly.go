// Package monthly renders the monthly patching report a manager would
// forward: one self-contained HTML file (no script, no network: styles
// inline, charts as SVG drawn here) with the month's KPIs, the trends of
// the last year (open exposure by priority, MTTP per month, SLA
// compliance per team, patch success rate) and the top overdue patches,
// grouped by patch (one upgrade closes many findings).
package monthly

import (
	"cmp"
	"embed"
	"fmt"
	"html/template"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/patchbay/patchbay/kpi"
)

// Data is what a report shows; the caller reads it (from the API or a
// kpi.Service).
type Data struct {
	// Month is the month's first day (UTC); Team the team it is for
	// ("" for the whole fleet).
	Month     time.Time
	Team      string
	Generated time.Time
	// Report is the month as of its end, cut by team; ByPriority the same
	// cut by priority.
	Report     kpi.Report
	ByPriority kpi.Report
	// The trends of the last twelve months.
	Open    kpi.Series // open, by priority, weekly
	MTTP    kpi.Series // mttp_mean, monthly
	Success kpi.Series // success_rate, monthly
	// Overdue is what was overdue at the month's end.
	Overdue []kpi.Exposure
}

// Patch is an upgrade that closes overdue findings: one package to its
// fixed version.
type Patch struct {
	Package, Fixed, Ecosystem string
	Priority                  string // the most urgent it closes
	Findings, Hosts, Vulns    int
	OldestDue                 time.Time
}

// TopPatches groups overdue exposure by patch, most urgent first, then
// by findings closed.
func TopPatches(overdue []kpi.Exposure, limit int) []Patch {
	type key struct{ eco, pkg, fixed string }
	by := map[key]*Patch{}
	hosts := map[key]map[string]bool{}
	vulns := map[key]map[string]bool{}
	for _, e := range overdue {
		if !e.Overdue {
			continue
		}
		k := key{e.Ecosystem, e.Package, e.Fixed}
		p := by[k]
		if p == nil {
			p = &Patch{Package: e.Package, Fixed: e.Fixed, Ecosystem: e.Ecosystem, Priority: e.Priority, OldestDue: e.Due}
			by[k], hosts[k], vulns[k] = p, map[string]bool{}, map[string]bool{}
		}
		p.Findings++
		hosts[k][e.Asset] = true
		vulns[k][e.Vulnerability] = true
		if rank(e.Priority) < rank(p.Priority) {
			p.Priority = e.Priority
		}
		if e.Due.Before(p.OldestDue) {
			p.OldestDue = e.Due
		}
	}
	out := make([]Patch, 0, len(by))
	for k, p := range by {
		p.Hosts, p.Vulns = len(hosts[k]), len(vulns[k])
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b Patch) int {
		return cmp.Or(cmp.Compare(rank(a.Priority), rank(b.Priority)), cmp.Compare(b.Findings, a.Findings), a.OldestDue.Compare(b.OldestDue),
			cmp.Compare(a.Package, b.Package), cmp.Compare(a.Fixed, b.Fixed))
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

func rank(p string) int {
	if p == "" {
		return 9
	}
	return int(p[len(p)-1] - '0')
}

//go:embed report.html
var files embed.FS

var page = template.Must(template.New("report.html").Funcs(template.FuncMap{
	"pct":  pct,
	"days": func(d kpi.Durations) string { return daysText(d.Mean, d.N) },
	"med":  func(d kpi.Durations) string { return daysText(d.Median, d.N) },
	"p90":  func(d kpi.Durations) string { return daysText(d.P90, d.N) },
	"date": func(t time.Time) string { return t.UTC().Format(time.DateOnly) },
	"sub":  func(a, b int) int { return a - b },
	// lastDay is the day an as-of time ends (midnight: the day before).
	"lastDay": func(t time.Time) string { return t.UTC().Add(-time.Nanosecond).Format(time.DateOnly) },
	"fix": func(s string) string {
		if s == "" {
			return "(no fix)"
		}
		return s
	},
}).ParseFS(files, "report.html"))

func pct(r float64, den int) string {
	if den == 0 {
		return "–"
	}
	return strconv.FormatFloat(100*r, 'f', 1, 64) + "%"
}

func daysText(v float64, n int) string {
	if n == 0 {
		return "–"
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + " d"
}

// view is what the template sees.
type view struct {
	Data
	Title                    string
	Patches                  []Patch
	OpenChart, MTTPChart     template.HTML
	SLAChart, SuccessChart   template.HTML
	Total                    kpi.Figures
	Priorities, Teams        []kpi.Figures
	SuccessText, WithinTitle string
}

// Render writes the report.
func Render(w io.Writer, d Data) error {
	v := view{Data: d, Total: d.Report.Total, Priorities: d.ByPriority.Groups, Teams: d.Report.Groups, Patches: TopPatches(d.Overdue, 15)}
	v.Title = "Patching report, " + d.Month.UTC().Format("January 2006")
	if d.Team != "" {
		v.Title += " — team " + d.Team
	}
	v.WithinTitle = "the SLA"
	if d.Report.WithinDays > 0 {
		v.WithinTitle = fmt.Sprintf("%d days", d.Report.WithinDays)
	}
	count := func(f float64) string { return strconv.FormatFloat(f, 'f', 0, 64) }
	dayFmt := func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) + " d" }
	pctFmt := func(f float64) string { return strconv.FormatFloat(100*f, 'f', 0, 64) + "%" }
	v.OpenChart = template.HTML(lineChart("Open exposure by priority", lines(d.Open), count))
	v.MTTPChart = template.HTML(lineChart("Mean time to patch from the fix's release, per month", lines(d.MTTP), dayFmt))
	v.SuccessChart = template.HTML(lineChart("Patch success rate, per month", lines(d.Success), pctFmt))
	var bars []Bar
	for _, g := range d.Report.Groups {
		if den := g.SLA.Due - g.SLA.Excluded; den > 0 {
			bars = append(bars, Bar{Name: g.Group, Value: g.SLA.Rate, Label: fmt.Sprintf("%s (%d of %d)", pct(g.SLA.Rate, den), g.SLA.OnTime, den)})
		}
	}
	v.SLAChart = template.HTML(barChart("SLA compliance per team", bars, 1))
	return page.Execute(w, v)
}

// lines turns a series into chart lines, one per group.
func lines(s kpi.Series) []Line {
	var out []Line
	for _, g := range s.Groups() {
		l := Line{Name: g}
		for _, p := range s.Points {
			if v, ok := p.Values[g]; ok {
				l.Points = append(l.Points, Point{At: p.End, Value: v})
			}
		}
		out = append(out, l)
	}
	return out
}
