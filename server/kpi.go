package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/kpi"
)

// KPI is the KPI service on the server's store and policy: what the API,
// the metrics and the web UI compute their figures with.
func (s *Server) KPI() *kpi.Service {
	return &kpi.Service{Store: s.db.KPI, Now: s.cfg.Now, Assets: func(ctx context.Context) ([]kpi.Asset, error) {
		hosts, err := s.db.Fleet.Hosts(ctx, fleet.HostFilter{})
		if err != nil {
			return nil, err
		}
		set, err := s.Policy(ctx)
		if err != nil {
			return nil, err
		}
		return kpi.AssetsOf(hosts, set), nil
	}}
}

// kpiError maps a bad query to a 400 naming the parameter.
func kpiError(err error, field string) error {
	if errors.Is(err, kpi.ErrBadQuery) {
		return errBadRequest(err.Error(), field)
	}
	return err
}

// kpiQuery parses a KPI query: as_of (or to), from or since, by, within,
// stale and the filters.
func (s *Server) kpiQuery(q url.Values) (kpi.Query, error) {
	var out kpi.Query
	now := s.cfg.Now()
	for _, name := range []string{"as_of", "to"} {
		if v := q.Get(name); v != "" {
			t, err := kpi.ParseDate(v)
			if err != nil {
				return out, kpiError(err, "query."+name)
			}
			out.To = t
		}
	}
	if out.To.IsZero() {
		out.To = now
	}
	if v := q.Get("from"); v != "" {
		t, err := kpi.ParseDate(v)
		if err != nil {
			return out, kpiError(err, "query.from")
		}
		out.From = t.Add(-24 * time.Hour) // from the start of that day
		if _, err := time.Parse(time.DateOnly, v); err != nil {
			out.From = t
		}
	}
	if v := q.Get("since"); v != "" {
		if out.From != (time.Time{}) {
			return out, errBadRequest("since and from: give one", "query.since")
		}
		d, err := kpi.ParseSince(v)
		if err != nil {
			return out, kpiError(err, "query.since")
		}
		out.From = out.To.Add(-d)
	}
	by, err := kpi.ParseDimension(q.Get("by"))
	if err != nil {
		return out, kpiError(err, "query.by")
	}
	out.By = by
	if v := q.Get("within"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return out, errBadRequest(fmt.Sprintf("within %q: want a number of days (0: the SLA)", v), "query.within")
		}
		out.WithinDays = n
	}
	if v := q.Get("stale"); v != "" {
		d, err := kpi.ParseSince(v)
		if err != nil {
			return out, kpiError(err, "query.stale")
		}
		out.Stale = d
	}
	labels, err := labelsParam(q)
	if err != nil {
		return out, err
	}
	out.Filter = kpi.Filter{Team: q.Get("team"), Service: q.Get("service"), Group: q.Get("group"), Labels: labels,
		Priority: q.Get("priority"), Cycle: q.Get("cycle")}
	if p := out.Filter.Priority; p != "" && p != "P1" && p != "P2" && p != "P3" && p != "P4" {
		return out, errBadRequest(fmt.Sprintf("priority %q: want P1, P2, P3 or P4", p), "query.priority")
	}
	if c := out.Filter.Cycle; c != "" && c != "system" && c != "application" {
		return out, errBadRequest(fmt.Sprintf("cycle %q: want system or application", c), "query.cycle")
	}
	return out, nil
}

func (s *Server) getKPI(w http.ResponseWriter, r *http.Request, _ *caller) error {
	q, err := s.kpiQuery(r.URL.Query())
	if err != nil {
		return err
	}
	rep, err := s.KPI().Report(r.Context(), q)
	if err != nil {
		return kpiError(err, "query")
	}
	return writeJSON(w, http.StatusOK, rep)
}

func (s *Server) getKPIHistory(w http.ResponseWriter, r *http.Request, _ *caller) error {
	v := r.URL.Query()
	q, err := s.kpiQuery(v)
	if err != nil {
		return err
	}
	if _, err := kpi.MetricNamed(v.Get("metric")); err != nil {
		return kpiError(err, "query.metric")
	}
	step := v.Get("interval")
	if step == "" {
		step = string(kpi.Weekly)
	}
	st, err := kpi.ParseStep(step)
	if err != nil {
		return kpiError(err, "query.interval")
	}
	series, err := s.KPI().History(r.Context(), kpi.HistoryQuery{Metric: v.Get("metric"), Step: st, Query: q})
	if err != nil {
		return kpiError(err, "query")
	}
	return writeJSON(w, http.StatusOK, series)
}

// FindingsAsOf is the answer of GET /kpi/findings.
type FindingsAsOf struct {
	AsOf time.Time `json:"as_of"`
	// Total is how many were open then; Findings the page asked for
	// (limit, default 100; 0: all) after offset.
	Total    int            `json:"total"`
	Offset   int            `json:"offset"`
	Findings []kpi.Exposure `json:"findings"`
}

func (s *Server) getFindingsAsOf(w http.ResponseWriter, r *http.Request, _ *caller) error {
	v := r.URL.Query()
	if v.Get("as_of") == "" {
		return errBadRequest("as_of: required (YYYY-MM-DD or an RFC 3339 time)", "query.as_of")
	}
	q, err := s.kpiQuery(v)
	if err != nil {
		return err
	}
	limit, err := intParam(v, "limit", 100, 1<<30)
	if err != nil {
		return err
	}
	offset, err := intParam(v, "offset", 0, 1<<30)
	if err != nil {
		return err
	}
	p, err := s.KPI().FindingsPage(r.Context(), q.To, q.Filter, offset, limit)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, FindingsAsOf{AsOf: q.To, Total: p.Total, Offset: offset, Findings: p.Findings})
}

// kpiCollector exports the current KPIs per team and priority. The label
// sets are bounded: priority is P1..P4 or (none); team is one of the
// first maxTeams teams by name, the rest summed into "(other)", and
// (none) for hosts without one. The figures are computed at most once a
// minute, whatever the scrape rate.
type kpiCollector struct {
	s                                               *Server
	mu                                              sync.Mutex
	at                                              time.Time
	metrics                                         []prometheus.Metric
	open, overdue, mttp, sla, success, avail, cover *prometheus.Desc
}

const maxTeams = 50

func newKPICollector(s *Server) *kpiCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("patchbay_kpi_"+name, help, labels, nil)
	}
	return &kpiCollector{s: s,
		open:    d("open_exposure", "Open exposure intervals (unpatched findings) now.", "team", "priority"),
		overdue: d("overdue", "Open exposure intervals past their due date.", "team", "priority"),
		mttp:    d("mttp_days", "Time to patch from the fix's release of the last 90 days, days.", "team", "priority", "stat"),
		sla:     d("sla_compliance", "Closed on time ÷ due in the last 90 days (accepted excluded).", "team"),
		success: d("patch_success_rate", "Succeeded and no-change ÷ completed jobs of the last 90 days.", "team"),
		avail:   d("availability", "Host availability over the last 90 days.", "team"),
		cover:   d("coverage", "Hosts reporting ÷ known hosts.", "team"),
	}
}

func (c *kpiCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.open, c.overdue, c.mttp, c.sla, c.success, c.avail, c.cover} {
		ch <- d
	}
}

func (c *kpiCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) > time.Minute {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ms, err := c.compute(ctx)
		cancel()
		if err != nil {
			c.s.log.Warn("KPI metrics", "err", err)
		} else {
			c.metrics, c.at = ms, time.Now()
		}
	}
	for _, m := range c.metrics {
		ch <- m
	}
}

func (c *kpiCollector) compute(ctx context.Context) ([]prometheus.Metric, error) {
	now := c.s.cfg.Now()
	q := kpi.Query{From: now.Add(-90 * 24 * time.Hour), To: now, By: kpi.ByTeam}
	data, err := c.s.KPI().Load(ctx, q.From, q.To, q.WithinDays)
	if err != nil {
		return nil, err
	}
	rep, err := kpi.Compute(data, q)
	if err != nil {
		return nil, err
	}
	var out []prometheus.Metric
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		out = append(out, prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...))
	}
	type key struct{ team, prio string }
	open, overdue := map[key]float64{}, map[key]float64{}
	named := 0
	for _, g := range rep.Groups {
		label := g.Group
		if g.Group != kpi.None {
			if named++; named > maxTeams {
				label = "(other)"
			}
		}
		if label != "(other)" {
			gauge(c.sla, g.SLA.Rate, label)
			if g.Jobs != nil {
				gauge(c.success, g.Jobs.Success, label)
			}
			if g.Uptime != nil {
				gauge(c.avail, g.Uptime.Availability, label)
			}
			if g.Coverage != nil {
				gauge(c.cover, g.Coverage.Rate, label)
			}
		}
		tq := q
		tq.By, tq.Filter.Team = kpi.ByPriority, g.Group
		r, err := kpi.Compute(data, tq)
		if err != nil {
			return nil, err
		}
		for _, pg := range r.Groups {
			open[key{label, pg.Group}] += float64(pg.Open.Count)
			overdue[key{label, pg.Group}] += float64(pg.Open.Overdue)
			if label != "(other)" && pg.MTTP.N > 0 {
				gauge(c.mttp, pg.MTTP.Mean, label, pg.Group, "mean")
				gauge(c.mttp, pg.MTTP.Median, label, pg.Group, "median")
				gauge(c.mttp, pg.MTTP.P90, label, pg.Group, "p90")
			}
		}
	}
	for k, v := range open {
		gauge(c.open, v, k.team, k.prio)
		gauge(c.overdue, overdue[k], k.team, k.prio)
	}
	return out, nil
}

// DefaultKPIRetention is how long the KPI history (snapshots, closed
// exposure intervals, check-in gaps) is kept: 13 months and a few days.
const DefaultKPIRetention = 400 * 24 * time.Hour

// Snapshot takes the daily snapshot of the last UTC midnight (once a
// day) and prunes the KPI history past the retention. The leader runs
// it every hour.
func (s *Server) Snapshot(ctx context.Context) error {
	now := s.cfg.Now().UTC()
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	if !s.snapDay.Before(day) {
		return nil
	}
	if err := s.db.KPI.TakeSnapshot(ctx, day); err != nil {
		return err
	}
	keep := s.cfg.KPIRetention
	if keep <= 0 {
		keep = DefaultKPIRetention
	}
	if _, err := s.db.KPI.Prune(ctx, day.Add(-keep)); err != nil {
		return err
	}
	s.snapDay = day
	return nil
}

func (s *Server) snapshotLogged(ctx context.Context) {
	if err := s.Snapshot(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("KPI snapshot", "err", err)
	}
}
