package web

import (
	"context"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/api/rolloutapi"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/rollout"
)

var priorities = []string{"P1", "P2", "P3", "P4"}

type overviewData struct {
	Open      []Bar
	OpenTotal int
	Hosts     int
	Reboot    int
	Stale     int
	KEVVulns  int
	KEVOpen   int
	// KEVAsOf is when the KEV figures were counted (they are reused for
	// a while: counting them reads every finding).
	KEVAsOf time.Time
	// KEVReady: the KEV figures are counted (else being counted).
	KEVReady bool
	// HostsAsOf is when the hosts and their open findings were counted
	// (reused likewise: the list of every host).
	HostsAsOf time.Time
	Overdue   int
	// OverdueMore: there are more overdue findings than were counted.
	OverdueMore bool
	InFlight    []rolloutapi.PlanStatus
	AwaitingMe  []rolloutapi.PlanStatus
	// AsOf is the date the overview sees the fleet as of ("" now): its
	// open findings then come from the exposure ledger.
	AsOf string
	// KPI are the KPIs of the 90 days to the as-of date (KPIReady: they
	// are computed; else being computed), KPIAt when.
	KPI      kpiFigures
	KPIReady bool
	KPIAt    time.Time
	Chart    template.HTML
}

// fleetCounts are the overview's counts of the whole fleet.
type fleetCounts struct {
	Hosts, Reboot, Stale int
	Open                 map[string]int // open findings by priority
}

func (u *UI) fleetCounts(ctx context.Context, s *session, now time.Time) (fleetCounts, error) {
	var hl api.HostList
	if err := u.call(ctx, s, "GET", "/api/v1/hosts", nil, nil, &hl); err != nil {
		return fleetCounts{}, err
	}
	fc := fleetCounts{Hosts: len(hl.Hosts), Open: map[string]int{}}
	for _, h := range hl.Hosts {
		for p, n := range h.Open {
			fc.Open[p] += n
		}
		if h.Facts.RebootRequired {
			fc.Reboot++
		}
		if now.Sub(h.LastSeen) > 24*time.Hour {
			fc.Stale++
		}
	}
	return fc, nil
}

// overdueCap bounds the overdue findings the overview counts.
const overdueCap = 10000

func (u *UI) overview(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	var d overviewData
	now := u.cfg.Now()
	asOf, _, err := asOfParam(r)
	if err != nil {
		return err
	}
	d.AsOf = asOf
	if d.KPI, d.KPIAt, d.KPIReady, err = u.kpiFiguresOf(ctx, s, kpiQuery(asOf, "90d", "priority")); err != nil {
		if ae, ok := refusal(err); ok && ae.Status == http.StatusBadRequest {
			return badInput{ae.Body.Error}
		}
		return err
	}
	if d.KPIReady {
		d.Chart = exposureChart(d.KPI.Series, asOf)
	}
	if asOf != "" {
		// The fleet as it was: the ledger's open exposure by priority.
		for _, p := range priorities {
			n := group(d.KPI.Report, p).Open.Count
			d.Open = append(d.Open, Bar{Label: p, Value: n, Href: "/findings?" + url.Values{"as_of": {asOf}, "priority": {p}}.Encode(), Class: "p" + p[1:]})
			d.OpenTotal += n
		}
		d.Overdue = d.KPI.Report.Total.Open.Overdue
		u.render(w, r, s, http.StatusOK, "overview", "Overview as of "+asOf, d)
		return nil
	}
	// The fleet-wide counts read every host and every KEV finding: they
	// are kept for a while, the same for everyone.
	fc, at, err := cachedValue(u, "overview:fleet", func() (fleetCounts, error) { return u.fleetCounts(ctx, s, now) })
	if err != nil {
		return err
	}
	d.HostsAsOf = at
	d.Hosts, d.Reboot, d.Stale = fc.Hosts, fc.Reboot, fc.Stale
	for _, p := range priorities {
		d.Open = append(d.Open, Bar{Label: p, Value: fc.Open[p], Href: "/findings?status=open&priority=" + p, Class: "p" + p[1:]})
		d.OpenTotal += fc.Open[p]
	}
	// KEV findings come from the vulnerability aggregate, which reads
	// every finding: counted in the background, never waited for.
	who := *s
	kc, at, ok := cachedAsync(u, "overview:kev", func(ctx context.Context) ([2]int, error) {
		var vl api.VulnList
		if _, err := u.callCached(ctx, &who, "/api/v1/vulns", url.Values{"kev": {"true"}}, &vl); err != nil {
			return [2]int{}, err
		}
		var n [2]int
		for _, v := range vl.Vulnerabilities {
			if v.Open > 0 {
				n[0]++
				n[1] += v.Open
			}
		}
		return n, nil
	})
	d.KEVReady, d.KEVAsOf, d.KEVVulns, d.KEVOpen = ok, at, kc[0], kc[1]
	if d.Overdue, d.OverdueMore, err = u.countFindings(ctx, s, url.Values{"status": {"overdue"}}, overdueCap); err != nil {
		return err
	}
	plans, err := u.planList(ctx, s)
	if err != nil {
		return err
	}
	me := "user:" + s.User
	for _, p := range plans {
		switch {
		case inFlight(p):
			d.InFlight = append(d.InFlight, p)
		case p.Plan.State == rollout.AwaitingApproval && !slices.ContainsFunc(p.Plan.Approvals, func(a rollout.Approval) bool { return a.By == me }):
			d.AwaitingMe = append(d.AwaitingMe, p)
		}
	}
	u.render(w, r, s, http.StatusOK, "overview", "Overview", d)
	return nil
}

// countFindings counts the findings of a filter, page by page, up to
// limit (more: true when there are more).
func (u *UI) countFindings(ctx context.Context, s *session, q url.Values, limit int) (n int, more bool, err error) {
	q.Set("limit", "1000")
	for {
		var page fleet.FindingPage
		if err := u.call(ctx, s, "GET", "/api/v1/findings", q, nil, &page); err != nil {
			return n, false, err
		}
		n += len(page.Findings)
		if page.Next == "" {
			return n, false, nil
		}
		if n >= limit {
			return n, true, nil
		}
		q.Set("cursor", page.Next)
	}
}

func (u *UI) planList(ctx context.Context, s *session) ([]rolloutapi.PlanStatus, error) {
	var pl struct {
		Plans []rolloutapi.PlanStatus `json:"plans"`
	}
	err := u.call(ctx, s, "GET", "/api/v1/plans", nil, nil, &pl)
	return pl.Plans, err
}

// inFlight tells a started rollout that has not ended.
func inFlight(p rolloutapi.PlanStatus) bool {
	return p.Plan.State == rollout.Started && p.Rollout != nil && !ended(p.Rollout.State)
}

func ended(s rollout.State) bool { return s == rollout.Completed || s == rollout.Aborted }
