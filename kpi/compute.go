package kpi

import (
	"math"
	"slices"
	"time"

	"github.com/patchbay/patchbay/job"
)

// Data is what a report is computed from.
type Data struct {
	Intervals []Interval
	Assets    []Asset
	Gaps      []Gap
	Jobs      []Job
}

// Report is the figures of a period, per group.
type Report struct {
	From time.Time `json:"from"`
	AsOf time.Time `json:"as_of"`
	By   string    `json:"by,omitempty"`
	// WithinDays is N of Within (0: each interval's SLA).
	WithinDays int `json:"within_days"`
	// Total is the whole (filtered) fleet; Groups the cut, when asked.
	Total  Figures   `json:"total"`
	Groups []Figures `json:"groups,omitempty"`
}

// Figures are one group's KPIs (docs/kpis.md defines each).
type Figures struct {
	Group string `json:"group"`
	// MTTP is the time to patch from the fix's release, MTTPSeen from
	// the interval's open, of intervals remediated in the period.
	MTTP     Durations `json:"mttp_from_release"`
	MTTPSeen Durations `json:"mttp_from_first_seen"`
	// Open is the exposure still open at the as-of date.
	Open     OpenExposure `json:"open"`
	Within   Ratio        `json:"patched_within"`
	SLA      SLA          `json:"sla"`
	Reopen   Ratio        `json:"reopen"`
	Accepted int          `json:"accepted"` // intervals closed as accepted in the period
	Jobs     *Jobs        `json:"jobs,omitempty"`
	Uptime   *Uptime      `json:"uptime,omitempty"`
	Coverage *Cover       `json:"coverage,omitempty"`
}

// Durations summarise a set of durations, in days.
type Durations struct {
	N      int     `json:"n"`
	Mean   float64 `json:"mean_days"`
	Median float64 `json:"median_days"`
	P90    float64 `json:"p90_days"`
}

// OpenExposure is what is still open: how many intervals on how many assets,
// how old, how many overdue, by age bucket.
type OpenExposure struct {
	Count   int       `json:"count"`
	Assets  int       `json:"assets"`
	Overdue int       `json:"overdue"`
	Age     Durations `json:"age"`
	MaxAge  float64   `json:"max_age_days"`
	Buckets Buckets   `json:"age_buckets"`
}

// Buckets count open intervals by age in whole days.
type Buckets struct {
	D0to7    int `json:"0-7"`
	D8to30   int `json:"8-30"`
	D31to90  int `json:"31-90"`
	D91to180 int `json:"91-180"`
	Over180  int `json:"180+"`
}

// Ratio is a share: Num of Den (Rate is 0 when Den is).
type Ratio struct {
	Num  int     `json:"num"`
	Den  int     `json:"den"`
	Rate float64 `json:"rate"`
}

func ratio(num, den int) Ratio {
	r := Ratio{Num: num, Den: den}
	if den > 0 {
		r.Rate = float64(num) / float64(den)
	}
	return r
}

// SLA is compliance with due dates in the period.
type SLA struct {
	Due int `json:"due"` // intervals due in the period
	// Excluded were closed as accepted or not affected by their due date.
	Excluded int `json:"excluded"`
	OnTime   int `json:"on_time"`
	// Rate is OnTime ÷ (Due − Excluded).
	Rate float64 `json:"rate"`
}

// Jobs are the outcomes of the jobs settled in the period.
type Jobs struct {
	Completed  int `json:"completed"`
	Succeeded  int `json:"succeeded"` // with or without a reboot, and no change needed
	Rebooted   int `json:"succeeded_reboot"`
	NoChange   int `json:"no_change"`
	Failed     int `json:"failed"`
	RolledBack int `json:"rolled_back"`
	TimedOut   int `json:"timed_out"`
	NoAgent    int `json:"no_agent"`
	Skipped    int `json:"skipped"`
	// Checks and ChecksPassed are the health checks the jobs ran: the
	// services' availability as the rollouts saw it is Health.
	Checks       int     `json:"health_checks"`
	ChecksPassed int     `json:"health_checks_passed"`
	Health       float64 `json:"health_rate"`
	Success      float64 `json:"success_rate"`
	FailRate     float64 `json:"failed_rate"`
	BackRate     float64 `json:"rolled_back_rate"`
	TimeRate     float64 `json:"timed_out_rate"`
}

// Uptime is host availability over the period.
type Uptime struct {
	Hosts int `json:"hosts"`
	// Window is the hosts' observed time, Down the time in check-in gaps
	// longer than the stale threshold, PatchDown the part of Down inside
	// the hosts' jobs; all in hours.
	Window       float64 `json:"window_hours"`
	Down         float64 `json:"down_hours"`
	PatchDown    float64 `json:"patching_down_hours"`
	Availability float64 `json:"availability"`
}

// Cover is coverage at the as-of date.
type Cover struct {
	Hosts         int     `json:"hosts"`
	Reporting     int     `json:"reporting"`
	Rate          float64 `json:"rate"`
	Services      int     `json:"services"`
	ServicesFresh int     `json:"services_fresh"`
	ServiceRate   float64 `json:"service_rate"`
}

// acc collects one group's inputs.
type acc struct {
	fromRelease, fromSeen, ages []time.Duration
	f                           Figures
	assets                      map[string]bool
	within, cohort              int
	reopened, remediated        int
	jobs                        *Jobs
	up                          *Uptime
	cover                       *Cover
}

// Compute computes the report of q from data.
func Compute(data Data, q Query) (Report, error) {
	if err := q.normalize(); err != nil {
		return Report{}, err
	}
	from, to := q.From, q.To
	assets := make(map[string]*Asset, len(data.Assets))
	for i := range data.Assets {
		assets[data.Assets[i].ID] = &data.Assets[i]
	}
	total := &acc{f: Figures{Group: All}, assets: map[string]bool{}}
	groups := map[string]*acc{}
	get := func(k string) *acc {
		g := groups[k]
		if g == nil {
			g = &acc{f: Figures{Group: k}, assets: map[string]bool{}}
			groups[k] = g
		}
		return g
	}
	// Later intervals of the same key, for the reopen rate.
	next := map[int64]time.Time{}
	for _, iv := range data.Intervals {
		if iv.ReopenOf != 0 && !iv.Opened.After(to) {
			if t, ok := next[iv.ReopenOf]; !ok || iv.Opened.Before(t) {
				next[iv.ReopenOf] = iv.Opened
			}
		}
	}
	// What the store's range holds, whatever else data has: intervals
	// closed before the period less N days count only for being due in it.
	after := from.Add(-time.Duration(q.WithinDays) * day)
	for i := range data.Intervals {
		iv := &data.Intervals[i]
		if iv.Opened.After(to) || iv.ClosedBy(after) && !(iv.Due.After(after) && !iv.Due.After(to)) {
			continue
		}
		a := assets[iv.Asset]
		if !q.Filter.interval(iv, a) {
			continue
		}
		total.add(iv, q, next)
		if q.By != ByNone {
			for _, k := range q.By.intervalKeys(iv, a) {
				get(k).add(iv, q, next)
			}
		}
	}
	// Jobs, uptime and coverage: of hosts, cut by what hosts have.
	hostCut := q.By == ByNone || q.By.assetDim()
	jobCut := hostCut || q.By == ByStrategy || q.By == ByType || q.By == ByRollout || q.By == ByPackage
	jobsOf := map[string][]*Job{}
	total.jobs = &Jobs{}
	for i := range data.Jobs {
		j := &data.Jobs[i]
		if !j.Settled.After(from) || j.Settled.After(to) {
			continue
		}
		jobsOf[j.Host] = append(jobsOf[j.Host], j)
		a := assets[j.Host]
		if !q.Filter.asset(a) {
			continue
		}
		countJob(total.jobs, j)
		if q.By != ByNone && jobCut {
			for _, k := range q.By.jobKeys(j, a) {
				g := get(k)
				if g.jobs == nil {
					g.jobs = &Jobs{}
				}
				countJob(g.jobs, j)
			}
		}
	}
	gapsOf := map[string][]Gap{}
	for _, g := range data.Gaps {
		gapsOf[g.Asset] = append(gapsOf[g.Asset], g)
	}
	total.up, total.cover = &Uptime{}, &Cover{}
	for _, a := range data.Assets {
		if a.Enrolled.After(to) || !q.Filter.asset(&a) {
			continue
		}
		var keys []string
		if q.By != ByNone && hostCut {
			keys = q.By.assetKeys(&a)
		}
		targets := []*acc{total}
		for _, k := range keys {
			g := get(k)
			if g.up == nil {
				g.up, g.cover = &Uptime{}, &Cover{}
			}
			targets = append(targets, g)
		}
		gaps := gapsOf[a.ID]
		if a.Service != "" {
			fresh := to.Sub(lastCheckin(a, gaps, to)) < q.ServiceFresh
			for _, t := range targets {
				t.cover.Services++
				if fresh {
					t.cover.ServicesFresh++
				}
			}
			continue
		}
		reporting := to.Sub(lastCheckin(a, gaps, to)) < q.Stale
		window, down, patch := uptimeOf(a, gaps, jobsOf[a.ID], from, to, q.Stale)
		for _, t := range targets {
			t.cover.Hosts++
			if reporting {
				t.cover.Reporting++
			}
			t.up.Hosts++
			t.up.Window += window.Hours()
			t.up.Down += down.Hours()
			t.up.PatchDown += patch.Hours()
		}
	}
	r := Report{From: from, AsOf: to, By: string(q.By), WithinDays: q.WithinDays, Total: total.finish()}
	if q.By != ByNone {
		for _, k := range sortedKeys(groups) {
			r.Groups = append(r.Groups, groups[k].finish())
		}
	}
	return r, nil
}

func (g *acc) add(iv *Interval, q Query, next map[int64]time.Time) {
	from, to := q.From, q.To
	closedIn := !iv.Closed.IsZero() && iv.Closed.After(from) && !iv.Closed.After(to)
	if closedIn && iv.Reason == Remediated {
		g.fromSeen = append(g.fromSeen, iv.Closed.Sub(iv.Opened))
		if !iv.FixReleased.IsZero() {
			g.fromRelease = append(g.fromRelease, max(0, iv.Closed.Sub(iv.FixReleased)))
		}
		g.remediated++
		if t, ok := next[iv.ID]; ok && !t.After(iv.Closed.Add(ReopenWindow)) {
			g.reopened++
		}
	}
	if closedIn && iv.Reason == Accepted {
		g.f.Accepted++
	}
	if iv.OpenAt(to) {
		age := to.Sub(iv.Opened)
		g.ages = append(g.ages, age)
		g.f.Open.Count++
		g.assets[iv.Asset] = true
		if !iv.Due.IsZero() && iv.Due.Before(to) {
			g.f.Open.Overdue++
		}
		b := &g.f.Open.Buckets
		switch days := int(age / day); {
		case days <= 7:
			b.D0to7++
		case days <= 30:
			b.D8to30++
		case days <= 90:
			b.D31to90++
		case days <= 180:
			b.D91to180++
		default:
			b.Over180++
		}
	}
	if !iv.Due.IsZero() && iv.Due.After(from) && !iv.Due.After(to) {
		g.f.SLA.Due++
		switch {
		case iv.ClosedBy(iv.Due) && iv.Reason != Remediated:
			g.f.SLA.Excluded++
		case iv.ClosedBy(iv.Due):
			g.f.SLA.OnTime++
		}
	}
	if !iv.FixReleased.IsZero() {
		n := time.Duration(q.WithinDays) * day
		if q.WithinDays == 0 {
			n = -1
			if !iv.Due.IsZero() {
				n = iv.Due.Sub(iv.Opened)
			}
		}
		if n >= 0 {
			deadline := iv.FixReleased.Add(n)
			if deadline.After(from) && !deadline.After(to) && !(iv.ClosedBy(deadline) && iv.Reason != Remediated) {
				g.cohort++
				if iv.ClosedBy(deadline) {
					g.within++
				}
			}
		}
	}
}

func (g *acc) finish() Figures {
	f := g.f
	f.MTTP = summarize(g.fromRelease)
	f.MTTPSeen = summarize(g.fromSeen)
	f.Open.Age = summarize(g.ages)
	if n := len(g.ages); n > 0 {
		f.Open.MaxAge = days(slices.Max(g.ages))
	}
	f.Open.Assets = len(g.assets)
	f.Within = ratio(g.within, g.cohort)
	f.Reopen = ratio(g.reopened, g.remediated)
	if d := f.SLA.Due - f.SLA.Excluded; d > 0 {
		f.SLA.Rate = float64(f.SLA.OnTime) / float64(d)
	}
	if j := g.jobs; j != nil && j.Checks > 0 {
		j.Health = float64(j.ChecksPassed) / float64(j.Checks)
	}
	if j := g.jobs; j != nil && j.Completed > 0 {
		c := float64(j.Completed)
		j.Success = float64(j.Succeeded) / c
		j.FailRate, j.BackRate, j.TimeRate = float64(j.Failed)/c, float64(j.RolledBack)/c, float64(j.TimedOut)/c
	}
	f.Jobs = g.jobs
	if u := g.up; u != nil && u.Window > 0 {
		u.Availability = 1 - u.Down/u.Window
	}
	f.Uptime = g.up
	if c := g.cover; c != nil {
		if c.Hosts > 0 {
			c.Rate = float64(c.Reporting) / float64(c.Hosts)
		}
		if c.Services > 0 {
			c.ServiceRate = float64(c.ServicesFresh) / float64(c.Services)
		}
	}
	f.Coverage = g.cover
	return f
}

func countJob(j *Jobs, jb *Job) {
	j.Checks += jb.Checks
	j.ChecksPassed += jb.Checks - jb.ChecksFailed
	switch jb.Outcome {
	case job.Succeeded:
		j.Succeeded++
	case job.SucceededReboot:
		j.Succeeded++
		j.Rebooted++
	case job.NoChange:
		j.Succeeded++
		j.NoChange++
	case job.Failed:
		j.Failed++
	case job.RolledBack:
		j.RolledBack++
	case job.TimedOut:
		j.TimedOut++
	case job.NoAgent:
		j.NoAgent++
		return
	case job.Skipped:
		j.Skipped++
		return
	default:
		return
	}
	j.Completed++
}

// summarize gives the mean and the nearest-rank median and p90, in days.
func summarize(ds []time.Duration) Durations {
	if len(ds) == 0 {
		return Durations{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	var sum float64
	for _, d := range s {
		sum += float64(d)
	}
	return Durations{N: len(s), Mean: sum / float64(len(s)) / float64(day), Median: days(NearestRank(s, 0.5)), P90: days(NearestRank(s, 0.9))}
}

// NearestRank is the p-quantile of sorted by the nearest-rank method:
// the smallest value with at least p of the values at or below it.
func NearestRank(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func days(d time.Duration) float64 { return float64(d) / float64(day) }

// lastCheckin is the asset's last check-in at or before t: its last seen
// time when that is not after t, else the start of a gap spanning t,
// else t itself (it checked in within the gaps' resolution).
func lastCheckin(a Asset, gaps []Gap, t time.Time) time.Time {
	if !a.LastSeen.After(t) {
		return a.LastSeen
	}
	for _, g := range gaps {
		if !g.From.After(t) && g.To.After(t) {
			return g.From
		}
	}
	return t
}

// downSpans are a host's down times up to the as-of date: its check-in
// gaps at least stale long (cut at the as-of date), and the pause since
// its last check-in when that is.
func downSpans(a Asset, gaps []Gap, to time.Time, stale time.Duration) [][2]time.Time {
	var out [][2]time.Time
	for _, g := range gaps {
		// A gap still running at the as-of date is what was known then.
		end := minTime(g.To, to)
		if end.Sub(g.From) >= stale {
			out = append(out, [2]time.Time{g.From, end})
		}
	}
	if a.LastSeen.Before(to) && to.Sub(a.LastSeen) >= stale {
		out = append(out, [2]time.Time{a.LastSeen, to})
	}
	return out
}

// uptimeOf is a host's observed window in (from, to], its down time in
// it and the part of that inside its jobs (from start to settle).
func uptimeOf(a Asset, gaps []Gap, jobs []*Job, from, to time.Time, stale time.Duration) (window, down, patch time.Duration) {
	start := from
	if a.Enrolled.After(start) {
		start = a.Enrolled
	}
	if !to.After(start) {
		return 0, 0, 0
	}
	window = to.Sub(start)
	for _, sp := range downSpans(a, gaps, to, stale) {
		s, e := maxTime(sp[0], start), minTime(sp[1], to)
		if !e.After(s) {
			continue
		}
		down += e.Sub(s)
		for _, j := range jobs {
			if j.Started.IsZero() {
				continue
			}
			js, je := maxTime(s, j.Started), minTime(e, j.Settled)
			if je.After(js) {
				patch += je.Sub(js)
			}
		}
	}
	return window, down, min(patch, down)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
