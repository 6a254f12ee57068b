package web

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/patchbay/patchbay/kpi"
)

// kpiWait is how long a page waits for KPI figures being computed
// before it says they are being computed (a small fleet's are there at
// once; a large fleet's take seconds and arrive at a reload).
const kpiWait = 300 * time.Millisecond

// kpiFigures are the KPIs of a period as of a date, by priority, and
// the open exposure by priority per week of it: what the overview's
// panel and the KPI page show, read from the API's /kpi and
// /kpi/history.
type kpiFigures struct {
	Report kpi.Report
	Series kpi.Series
}

// asOfParam reads the as_of parameter: "" (now) or a date the API
// takes (checked here too, so a bad one is a clear 400 on the page).
func asOfParam(r *http.Request) (string, time.Time, error) {
	v := strings.TrimSpace(r.URL.Query().Get("as_of"))
	if v == "" {
		return "", time.Time{}, nil
	}
	t, err := kpi.ParseDate(v)
	if err != nil {
		return "", time.Time{}, badInput{fmt.Sprintf("as of %q: want a date (2026-03-31) or an RFC 3339 time", v)}
	}
	return v, t, nil
}

// kpiQuery is the API query of a KPI view.
func kpiQuery(asOf, since, by string) url.Values {
	q := url.Values{"since": {since}}
	if by != "" {
		q.Set("by", by)
	}
	if asOf != "" {
		q.Set("as_of", asOf)
	}
	return q
}

// kpiFiguresOf returns the figures of q, computed in the background
// (they read the exposure ledger of the period: seconds on a large
// fleet) and kept for a while; ready is false while they are being
// computed. A refusal of the query is returned as an error.
func (u *UI) kpiFiguresOf(ctx context.Context, s *session, q url.Values) (f kpiFigures, at time.Time, ready bool, err error) {
	key := "kpi:" + q.Encode()
	who := *s
	errKey := key + ":err"
	compute := func(ctx context.Context) (kpiFigures, error) {
		var f kpiFigures
		if err := u.call(ctx, &who, "GET", "/api/v1/kpi", q, nil, &f.Report); err != nil {
			u.keepErr(errKey, err)
			return f, err
		}
		hq := url.Values{"metric": {"open"}, "interval": {"week"}, "by": {"priority"}}
		for k, v := range q {
			if k != "by" {
				hq[k] = v
			}
		}
		if err := u.call(ctx, &who, "GET", "/api/v1/kpi/history", hq, nil, &f.Series); err != nil {
			u.keepErr(errKey, err)
			return f, err
		}
		return f, nil
	}
	// Only the view that starts the computation waits for it a moment:
	// the others while it runs do not.
	u.cacheMu.Lock()
	running := u.refreshing[key]
	u.cacheMu.Unlock()
	deadline := time.Now().Add(kpiWait)
	if running {
		deadline = time.Now()
	}
	for {
		f, at, ready = cachedAsync(u, key, compute)
		if ready {
			return f, at, true, nil
		}
		if err := u.takeErr(errKey); err != nil {
			return f, at, false, err
		}
		if time.Now().After(deadline) {
			return f, at, false, nil
		}
		select {
		case <-ctx.Done():
			return f, at, false, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// keepErr keeps a background computation's error for the page that
// waits for it (a bad query is the page's 400, not a log line).
func (u *UI) keepErr(key string, err error) {
	u.cacheMu.Lock()
	defer u.cacheMu.Unlock()
	u.cache[key] = cached{at: time.Now(), val: err}
}

func (u *UI) takeErr(key string) error {
	u.cacheMu.Lock()
	defer u.cacheMu.Unlock()
	c, ok := u.cache[key]
	if !ok {
		return nil
	}
	delete(u.cache, key)
	err, _ := c.val.(error)
	return err
}

// group is a report's figures of one group (zero when it has none).
func group(r kpi.Report, name string) kpi.Figures {
	for _, g := range r.Groups {
		if g.Group == name {
			return g
		}
	}
	return kpi.Figures{Group: name}
}

// days formats a duration in days.
func daysText(d float64) string {
	switch {
	case d == 0:
		return "0 d"
	case d < 1:
		return fmt.Sprintf("%.0f h", d*24)
	case d < 10:
		return fmt.Sprintf("%.1f d", d)
	}
	return fmt.Sprintf("%.0f d", d)
}

// rateText formats a share of den ("—" when there is nothing to share).
func rateText(rate float64, den int) string {
	if den == 0 {
		return "—"
	}
	return strconv.FormatFloat(rate*100, 'f', 1, 64) + " %"
}

// kpiDims are the dimensions the KPI page cuts by.
var kpiDims = []string{"priority", "cycle", "type", "team"}

type kpiPageData struct {
	AsOf, Since, By string
	Dims            []string
	Figures         kpiFigures
	Ready           bool
	At              time.Time
	Chart           template.HTML
	Error           string
}

// kpiPage shows the KPIs of a period as of a date, cut by a dimension.
func (u *UI) kpiPage(w http.ResponseWriter, r *http.Request, s *session) error {
	asOf, _, err := asOfParam(r)
	if err != nil {
		return err
	}
	d := kpiPageData{AsOf: asOf, Since: r.URL.Query().Get("since"), By: r.URL.Query().Get("by"), Dims: kpiDims}
	if d.Since == "" {
		d.Since = "90d"
	}
	if d.By == "" {
		d.By = "priority"
	}
	status := http.StatusOK
	d.Figures, d.At, d.Ready, err = u.kpiFiguresOf(r.Context(), s, kpiQuery(asOf, d.Since, d.By))
	if err != nil {
		ae, ok := refusal(err)
		if !ok || ae.Status != http.StatusBadRequest {
			return err
		}
		d.Error, status = ae.Body.Error, ae.Status
	}
	if d.Ready {
		d.Chart = exposureChart(d.Figures.Series, asOf)
	}
	u.render(w, r, s, status, "kpi", "KPIs", d)
	return nil
}

// exposureChart draws the open exposure by priority over time as SVG
// lines, a point a week, each priority's last point a link to the
// findings open then.
func exposureChart(s kpi.Series, asOf string) template.HTML {
	const width, height, left, right, top, bottom = 560, 200, 44, 60, 10, 24
	if len(s.Points) == 0 {
		return template.HTML(`<p class="muted">No exposure in the period.</p>`)
	}
	max := 1.0
	for _, p := range s.Points {
		for _, v := range p.Values {
			max = maxF(max, v)
		}
	}
	n := len(s.Points)
	x := func(i int) float64 {
		if n == 1 {
			return left
		}
		return left + float64(i)*float64(width-left-right)/float64(n-1)
	}
	y := func(v float64) float64 { return top + (1-v/max)*float64(height-top-bottom) }
	var sb strings.Builder
	title := "Open exposure by priority, a point a week"
	fmt.Fprintf(&sb, `<svg class="chart lines" role="img" aria-labelledby="exp-t" viewBox="0 0 %d %d" width="100%%" preserveAspectRatio="xMinYMin meet"><title id="exp-t">%s</title>`,
		width, height, template.HTMLEscapeString(title))
	fmt.Fprintf(&sb, `<line x1="%d" y1="%d" x2="%d" y2="%d" class="axis"/><text x="0" y="%d" class="lbl">%.0f</text><text x="0" y="%.1f" class="lbl">0</text>`,
		left, height-bottom, width-right, height-bottom, top+10, max, y(0))
	fmt.Fprintf(&sb, `<text x="%d" y="%d" class="lbl">%s</text><text x="%d" y="%d" class="lbl" text-anchor="end">%s</text>`,
		left, height-6, s.Points[0].Start.UTC().Format(time.DateOnly), width-right, height-6, s.Points[n-1].End.UTC().Format(time.DateOnly))
	for _, p := range priorities {
		var pts []string
		for i, pt := range s.Points {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i), y(pt.Values[p])))
		}
		last := s.Points[n-1].Values[p]
		q := url.Values{"priority": {p}, "as_of": {s.Points[n-1].End.UTC().Format(time.RFC3339)}}
		if asOf == "" {
			q = url.Values{"priority": {p}, "status": {"open"}}
		}
		fmt.Fprintf(&sb, `<a href="/findings?%s"><polyline points="%s" class="line p%s"><title>%s: %.0f open at %s</title></polyline>`,
			template.HTMLEscapeString(q.Encode()), strings.Join(pts, " "), p[1:], p, last, s.Points[n-1].End.UTC().Format(time.DateOnly))
		if last > 0 { // the zero lines lie on the axis, unlabelled
			fmt.Fprintf(&sb, `<text x="%.1f" y="%.1f" class="num">%s %.0f</text>`, x(n-1)+4, y(last)+4, p, last)
		}
		sb.WriteString(`</a>`)
	}
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String())
}

func maxF(a, b float64) float64 {
	if a > b {
		return a
	}
	return b
}
