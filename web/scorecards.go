package web

import (
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/patchbay/patchbay/scorecard"
)

// scorecardsData is the scorecards page: every scorecard and every
// initiative.
type scorecardsData struct {
	Cards       []scorecard.Summary
	Initiatives []scorecard.InitiativeProgress
}

func (u *UI) scorecards(w http.ResponseWriter, r *http.Request, s *session) error {
	var d scorecardsData
	if err := u.call(r.Context(), s, "GET", "/api/v1/scorecards", nil, nil, &d.Cards); err != nil {
		return err
	}
	if err := u.call(r.Context(), s, "GET", "/api/v1/initiatives", nil, nil, &d.Initiatives); err != nil {
		return err
	}
	u.render(w, r, s, http.StatusOK, "scorecards", "Scorecards", d)
	return nil
}

type scorecardData struct {
	scorecard.Detail
	Team string
	// Links are the entities' pages: a service's (a host or host group
	// result, keyed host/NAME or hostGroup/NAME, is shown unlinked).
	Links map[string]string
}

func (u *UI) scorecard(w http.ResponseWriter, r *http.Request, s *session) error {
	q := pick(r.URL.Query(), []string{"team"})
	var d scorecardData
	if err := u.call(r.Context(), s, "GET", "/api/v1/scorecards/"+url.PathEscape(r.PathValue("name")), q, nil, &d.Detail); err != nil {
		return err
	}
	d.Team = q.Get("team")
	d.Links = map[string]string{}
	for _, res := range d.Results {
		if !strings.Contains(res.Entity, "/") {
			d.Links[res.Entity] = "/services/" + url.PathEscape(res.Entity)
		}
	}
	u.render(w, r, s, http.StatusOK, "scorecard", "Scorecard "+d.Name, d)
	return nil
}

type initiativeData struct {
	scorecard.InitiativeProgress
	Chart template.HTML
}

func (u *UI) initiative(w http.ResponseWriter, r *http.Request, s *session) error {
	var d initiativeData
	if err := u.call(r.Context(), s, "GET", "/api/v1/initiatives/"+url.PathEscape(r.PathValue("name")), nil, nil, &d.InitiativeProgress); err != nil {
		return err
	}
	d.Chart = burnupChart("Burn-up of "+d.Name+": services passing by day", d.Burnup)
	u.render(w, r, s, http.StatusOK, "initiative", "Initiative "+d.Name, d)
	return nil
}

func (u *UI) service(w http.ResponseWriter, r *http.Request, s *session) error {
	var d scorecard.ServiceView
	if err := u.call(r.Context(), s, "GET", "/api/v1/services/"+url.PathEscape(r.PathValue("name")), nil, nil, &d); err != nil {
		return err
	}
	u.render(w, r, s, http.StatusOK, "service", "Service "+d.Name, d)
	return nil
}

func (u *UI) team(w http.ResponseWriter, r *http.Request, s *session) error {
	var d scorecard.TeamView
	if err := u.call(r.Context(), s, "GET", "/api/v1/teams/"+url.PathEscape(r.PathValue("name")), nil, nil, &d); err != nil {
		return err
	}
	u.render(w, r, s, http.StatusOK, "team", "Team "+d.Name, d)
	return nil
}

// burnupChart draws an initiative's burn-up as SVG: the services passing
// at the end of each day against the services in scope, with a text a
// screen reader reads.
func burnupChart(title string, pts []scorecard.BurnPoint) template.HTML {
	if len(pts) == 0 {
		return ""
	}
	const width, height, left, bottom, top = 640, 220, 40, 24, 10
	total := 1
	for _, p := range pts {
		total = max(total, p.Total)
	}
	plotW, plotH := width-left-10, height-bottom-top
	x := func(i int) float64 {
		if len(pts) == 1 {
			return left
		}
		return left + float64(plotW)*float64(i)/float64(len(pts)-1)
	}
	y := func(v int) float64 { return top + float64(plotH)*(1-float64(v)/float64(total)) }
	var sb strings.Builder
	last := pts[len(pts)-1]
	fmt.Fprintf(&sb, `<svg class="chart burnup" role="img" aria-labelledby="bu-t bu-d" viewBox="0 0 %d %d" width="100%%" preserveAspectRatio="xMinYMin meet"><title id="bu-t">%s</title><desc id="bu-d">%d of %d passing on %s, from %d on %s</desc>`,
		width, height, template.HTMLEscapeString(title), last.Passing, last.Total, last.Day, pts[0].Passing, pts[0].Day)
	fmt.Fprintf(&sb, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" class="axis"/><line x1="%d" y1="%d" x2="%d" y2="%.1f" class="axis"/>`, left, y(0), width-10, y(0), left, top, left, y(0))
	fmt.Fprintf(&sb, `<text x="%d" y="%.1f" class="lbl" text-anchor="end">%d</text><text x="%d" y="%.1f" class="lbl" text-anchor="end">0</text>`, left-4, y(total)+4, total, left-4, y(0)+4)
	var scope, pass strings.Builder
	for i, p := range pts {
		fmt.Fprintf(&scope, "%.1f,%.1f ", x(i), y(p.Total))
		fmt.Fprintf(&pass, "%.1f,%.1f ", x(i), y(p.Passing))
	}
	fmt.Fprintf(&sb, `<polyline points="%s" class="line scope"><title>in scope</title></polyline>`, strings.TrimSpace(scope.String()))
	fmt.Fprintf(&sb, `<polyline points="%s" class="line passing"><title>passing</title></polyline>`, strings.TrimSpace(pass.String()))
	fmt.Fprintf(&sb, `<text x="%d" y="%d" class="lbl">%s</text><text x="%d" y="%d" class="lbl" text-anchor="end">%s</text>`, left, height-6, pts[0].Day, width-10, height-6, last.Day)
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String())
}
