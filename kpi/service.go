package kpi

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"
)

// Service answers KPI questions from a store: the entry points of the
// CLI, the API, the metrics and the web UI.
type Service struct {
	Store  Store
	Assets Assets
	Now    func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

// Load reads what queries over (from, to] need (intervals that were
// open after the earliest date any figure looks back to), for Compute
// to cut many ways without reading again.
func (s *Service) Load(ctx context.Context, from, to time.Time, withinDays int) (Data, error) {
	after := from.Add(-time.Duration(withinDays) * day)
	var d Data
	var err error
	if d.Intervals, err = s.Store.Intervals(ctx, Range{After: after, To: to}); err != nil {
		return Data{}, fmt.Errorf("exposure ledger: %w", err)
	}
	if d.Gaps, err = s.Store.Gaps(ctx, Range{After: after, To: to}); err != nil {
		return Data{}, fmt.Errorf("check-in gaps: %w", err)
	}
	if d.Jobs, err = s.Store.Jobs(ctx, Range{After: from, To: to}); err != nil {
		return Data{}, fmt.Errorf("job results: %w", err)
	}
	if d.Assets, err = s.Assets(ctx); err != nil {
		return Data{}, fmt.Errorf("assets: %w", err)
	}
	return d, nil
}

// Report computes the KPIs of q (To zero: now).
func (s *Service) Report(ctx context.Context, q Query) (Report, error) {
	if q.To.IsZero() {
		q.To = s.now()
	}
	if err := q.normalize(); err != nil {
		return Report{}, err
	}
	d, err := s.Load(ctx, q.From, q.To, q.WithinDays)
	if err != nil {
		return Report{}, err
	}
	return Compute(d, q)
}

// Step is a series. step.
type Step string

// Steps of a series.
const (
	Daily   Step = "day"
	Weekly  Step = "week"
	Monthly Step = "month"
)

// ParseStep parses an --interval value.
func ParseStep(s string) (Step, error) {
	switch Step(s) {
	case Daily, Weekly, Monthly:
		return Step(s), nil
	}
	return "", badQuery("interval %q: want day, week or month", s)
}

// floor is the start of t's step (UTC: midnight, Monday, the 1st).
func (st Step) floor(t time.Time) time.Time {
	t = t.UTC()
	d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	switch st {
	case Weekly:
		return d.AddDate(0, 0, -((int(d.Weekday()) + 6) % 7))
	case Monthly:
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
	return d
}

func (st Step) next(t time.Time) time.Time {
	switch st {
	case Weekly:
		return t.AddDate(0, 0, 7)
	case Monthly:
		return t.AddDate(0, 1, 0)
	}
	return t.AddDate(0, 0, 1)
}

// HistoryQuery asks for a metric's series: one point per step from From
// to To, each the metric of that step's period as of its end (the
// current step's as of To).
type HistoryQuery struct {
	Metric string
	Step   Step
	Query  // From, To, By, WithinDays, Filter as in a report
}

// Point is one step of a series.
type Point struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Values are the metric per group (All when uncut).
	Values map[string]float64 `json:"values"`
}

// Series is a metric over time.
type Series struct {
	Metric string  `json:"metric"`
	Step   Step    `json:"interval"`
	By     string  `json:"by,omitempty"`
	Points []Point `json:"points"`
}

// Groups are the groups any point of the series has a value for, sorted.
func (s Series) Groups() []string {
	seen := map[string]bool{}
	for _, p := range s.Points {
		for g := range p.Values {
			seen[g] = true
		}
	}
	gs := make([]string, 0, len(seen))
	for g := range seen {
		gs = append(gs, g)
	}
	slices.Sort(gs)
	return gs
}

// Metric is a named figure of a group.
type Metric struct {
	Name, Help string
	Of         func(Figures) float64
}

// Metrics are the figures a series can follow.
var Metrics = []Metric{
	{"mttp_mean", "mean time to patch from the fix's release, days", func(f Figures) float64 { return f.MTTP.Mean }},
	{"mttp_median", "median time to patch from the fix's release, days", func(f Figures) float64 { return f.MTTP.Median }},
	{"mttp_p90", "p90 time to patch from the fix's release, days", func(f Figures) float64 { return f.MTTP.P90 }},
	{"mttp_seen_mean", "mean time to patch from first seen, days", func(f Figures) float64 { return f.MTTPSeen.Mean }},
	{"mttp_seen_median", "median time to patch from first seen, days", func(f Figures) float64 { return f.MTTPSeen.Median }},
	{"mttp_seen_p90", "p90 time to patch from first seen, days", func(f Figures) float64 { return f.MTTPSeen.P90 }},
	{"open", "open exposure intervals at the step's end", func(f Figures) float64 { return float64(f.Open.Count) }},
	{"open_age_mean", "mean age of the open exposure, days", func(f Figures) float64 { return f.Open.Age.Mean }},
	{"overdue", "open intervals past their due date", func(f Figures) float64 { return float64(f.Open.Overdue) }},
	{"patched_within_rate", "share patched within N days of the fix's release", func(f Figures) float64 { return f.Within.Rate }},
	{"sla_compliance", "closed on time ÷ due in the step (accepted excluded)", func(f Figures) float64 { return f.SLA.Rate }},
	{"reopen_rate", "remediated intervals reopened within 30 days", func(f Figures) float64 { return f.Reopen.Rate }},
	{"success_rate", "patch success rate of the jobs settled", func(f Figures) float64 { return jobsOr(f, func(j *Jobs) float64 { return j.Success }) }},
	{"availability", "host availability", func(f Figures) float64 {
		if f.Uptime == nil {
			return 0
		}
		return f.Uptime.Availability
	}},
	{"coverage", "hosts reporting ÷ known hosts", func(f Figures) float64 {
		if f.Coverage == nil {
			return 0
		}
		return f.Coverage.Rate
	}},
}

func jobsOr(f Figures, of func(*Jobs) float64) float64 {
	if f.Jobs == nil {
		return 0
	}
	return of(f.Jobs)
}

// MetricNamed finds a metric.
func MetricNamed(name string) (Metric, error) {
	i := slices.IndexFunc(Metrics, func(m Metric) bool { return m.Name == name })
	if i < 0 {
		names := make([]string, len(Metrics))
		for i, m := range Metrics {
			names[i] = m.Name
		}
		return Metric{}, badQuery("metric %q: want one of %v", name, names)
	}
	return Metrics[i], nil
}

// History computes a metric's series.
func (s *Service) History(ctx context.Context, h HistoryQuery) (Series, error) {
	m, err := MetricNamed(h.Metric)
	if err != nil {
		return Series{}, err
	}
	if _, err := ParseStep(string(h.Step)); err != nil {
		return Series{}, err
	}
	q := h.Query
	if q.To.IsZero() {
		q.To = s.now()
	}
	if err := q.normalize(); err != nil {
		return Series{}, err
	}
	d, err := s.Load(ctx, h.Step.floor(q.From), q.To, q.WithinDays)
	if err != nil {
		return Series{}, err
	}
	return Points(d, h, m, q)
}

// Points computes the series of m over d.
func Points(d Data, h HistoryQuery, m Metric, q Query) (Series, error) {
	out := Series{Metric: m.Name, Step: h.Step, By: string(q.By), Points: []Point{}}
	const maxPoints = 1000
	for start := h.Step.floor(q.From); start.Before(q.To); start = h.Step.next(start) {
		if len(out.Points) == maxPoints {
			return Series{}, badQuery("%d points or more: ask for a longer interval or a shorter period", maxPoints)
		}
		end := h.Step.next(start)
		if end.After(q.To) {
			end = q.To
		}
		sq := q
		sq.From, sq.To = start, end
		r, err := Compute(d, sq)
		if err != nil {
			return Series{}, err
		}
		p := Point{Start: start, End: end, Values: map[string]float64{}}
		if q.By == ByNone {
			p.Values[All] = m.Of(r.Total)
		}
		for _, g := range r.Groups {
			p.Values[g.Group] = m.Of(g)
		}
		out.Points = append(out.Points, p)
	}
	return out, nil
}

// Exposure is a finding as it was at a date: an open interval and its
// asset.
type Exposure struct {
	Interval
	Hostname string `json:"hostname"`
	Overdue  bool   `json:"overdue"`
}

// FindingsAsOf lists everything that was open at t, most urgent first
// (priority, then due date, then oldest).
func (s *Service) FindingsAsOf(ctx context.Context, t time.Time, f Filter) ([]Exposure, error) {
	p, err := s.FindingsPage(ctx, t, f, 0, 0)
	return p.Findings, err
}

// Page is a page of the exposure open at a date.
type Page struct {
	// Total is how many were open (after the filter), of which Findings
	// are the page.
	Total    int        `json:"total"`
	Findings []Exposure `json:"findings"`
}

// FindingsPage lists what was open at t, most urgent first: limit of
// them (0: all) after the first offset, with how many there were. A
// page reads only what the order and the filter need of each open
// interval, then the page's intervals whole.
func (s *Service) FindingsPage(ctx context.Context, t time.Time, f Filter, offset, limit int) (Page, error) {
	if offset < 0 || limit < 0 {
		return Page{}, badQuery("offset %d, limit %d: want whole numbers", offset, limit)
	}
	as, err := s.Assets(ctx)
	if err != nil {
		return Page{}, fmt.Errorf("assets: %w", err)
	}
	if limit == 0 {
		ivs, err := s.Store.Intervals(ctx, Range{After: t, To: t, Detail: true})
		if err != nil {
			return Page{}, fmt.Errorf("exposure ledger: %w", err)
		}
		out := OpenAt(ivs, as, t, f)
		return Page{Total: len(out), Findings: out[min(offset, len(out)):]}, nil
	}
	ivs, err := s.Store.OpenIntervals(ctx, t)
	if err != nil {
		return Page{}, fmt.Errorf("exposure ledger: %w", err)
	}
	// The order on slim keys (the list's order: OpenAt's), then the page.
	byAsset := make(map[string]*Asset, len(as))
	for i := range as {
		byAsset[as[i].ID] = &as[i]
	}
	type key struct {
		prio          int
		due, opened   int64
		hostname      string
		id            int64
		overdue, none bool // overdue; no due date (last)
	}
	keys := make([]key, 0, len(ivs))
	for i := range ivs {
		iv := &ivs[i]
		a := byAsset[iv.Asset]
		if !iv.OpenAt(t) || !f.interval(iv, a) {
			continue
		}
		k := key{prio: prioRank(iv.Priority), due: iv.Due.UnixNano(), opened: iv.Opened.UnixNano(), id: iv.ID,
			overdue: !iv.Due.IsZero() && iv.Due.Before(t), none: iv.Due.IsZero()}
		if a != nil {
			k.hostname = a.Hostname
		}
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int {
		if c := cmp.Compare(a.prio, b.prio); c != 0 {
			return c
		}
		switch {
		case a.none != b.none && a.none:
			return 1
		case a.none != b.none:
			return -1
		case !a.none:
			if c := cmp.Compare(a.due, b.due); c != 0 {
				return c
			}
		}
		return cmp.Or(cmp.Compare(a.opened, b.opened), cmp.Compare(a.hostname, b.hostname), cmp.Compare(a.id, b.id))
	})
	page := keys[min(offset, len(keys)):min(offset+limit, len(keys))]
	ids := make([]int64, len(page))
	for i, k := range page {
		ids[i] = k.id
	}
	whole, err := s.Store.IntervalsByID(ctx, ids, t)
	if err != nil {
		return Page{}, fmt.Errorf("exposure ledger: %w", err)
	}
	byID := make(map[int64]Interval, len(whole))
	for _, iv := range whole {
		byID[iv.ID] = iv
	}
	out := make([]Exposure, len(page))
	for i, k := range page {
		iv, ok := byID[k.id]
		if !ok {
			return Page{}, fmt.Errorf("exposure ledger: interval %d is gone", k.id)
		}
		out[i] = Exposure{Interval: iv, Hostname: k.hostname, Overdue: k.overdue}
	}
	return Page{Total: len(keys), Findings: out}, nil
}

// OpenAt is the exposure open at t.
func OpenAt(ivs []Interval, as []Asset, t time.Time, f Filter) []Exposure {
	byID := make(map[string]*Asset, len(as))
	for i := range as {
		byID[as[i].ID] = &as[i]
	}
	out := []Exposure{}
	for i := range ivs {
		iv := &ivs[i]
		a := byID[iv.Asset]
		if !iv.OpenAt(t) || !f.interval(iv, a) {
			continue
		}
		e := Exposure{Interval: *iv, Overdue: !iv.Due.IsZero() && iv.Due.Before(t)}
		if a != nil {
			e.Hostname = a.Hostname
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Exposure) int {
		return cmp.Or(cmp.Compare(prioRank(a.Priority), prioRank(b.Priority)), dueCmp(a.Due, b.Due), a.Opened.Compare(b.Opened),
			cmp.Compare(a.Hostname, b.Hostname), cmp.Compare(a.ID, b.ID))
	})
	return out
}

func prioRank(p string) int {
	if p == "" {
		return 9
	}
	return int(p[len(p)-1] - '0')
}

func dueCmp(a, b time.Time) int {
	switch {
	case a.IsZero() && b.IsZero():
		return 0
	case a.IsZero():
		return 1
	case b.IsZero():
		return -1
	}
	return a.Compare(b)
}
