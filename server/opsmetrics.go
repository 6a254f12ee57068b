package server

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// opsCollector exports what patchbay's own alert rules
// (deploy/patchbay.rules.yml) watch besides the KPIs: rollouts by state,
// hosts whose agent stopped reporting, and when each feed was last
// imported. Read at most every 30 s, whatever the scrape rate.
type opsCollector struct {
	s                       *Server
	mu                      sync.Mutex
	at                      time.Time
	metrics                 []prometheus.Metric
	rollouts, stale, feedAt *prometheus.Desc
}

func newOpsCollector(s *Server) *opsCollector {
	return &opsCollector{s: s,
		rollouts: prometheus.NewDesc("patchbay_rollouts", "Rollouts of the last 500 plans by state (halted ones wait for a person).", []string{"state"}, nil),
		stale:    prometheus.NewDesc("patchbay_hosts_not_reporting", "Hosts whose agent was not seen within --agent-stale.", nil, nil),
		feedAt:   prometheus.NewDesc("patchbay_feed_last_import_timestamp_seconds", "When each feed source was last imported (Unix time).", []string{"source"}, nil),
	}
}

func (c *opsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.rollouts
	ch <- c.stale
	ch <- c.feedAt
}

func (c *opsCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) > 30*time.Second {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ms, err := c.compute(ctx)
		cancel()
		if err != nil {
			c.s.log.Warn("operational metrics", "err", err)
		} else {
			c.metrics, c.at = ms, time.Now()
		}
	}
	for _, m := range c.metrics {
		ch <- m
	}
}

func (c *opsCollector) compute(ctx context.Context) ([]prometheus.Metric, error) {
	var out []prometheus.Metric
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		out = append(out, prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...))
	}
	rows, err := c.s.db.Rollouts.Plans(ctx, 500)
	if err != nil {
		return nil, err
	}
	states := map[string]float64{"running": 0, "baking": 0, "awaiting_promotion": 0, "paused": 0, "halted": 0}
	for _, r := range rows {
		if r.Machine != nil {
			states[string(r.Machine.State)]++
		}
	}
	for st, n := range states {
		gauge(c.rollouts, n, st)
	}
	seen, err := c.s.db.Rollouts.LastSeen(ctx)
	if err != nil {
		return nil, err
	}
	now := c.s.cfg.Now()
	stale := 0
	for _, t := range seen {
		if now.Sub(t) >= c.s.cfg.AgentStale {
			stale++
		}
	}
	gauge(c.stale, float64(stale))
	srcs, err := c.s.db.Sources(ctx)
	if err != nil {
		return nil, err
	}
	for _, src := range srcs {
		if !src.ImportedAt.IsZero() {
			gauge(c.feedAt, float64(src.ImportedAt.Unix()), src.Source)
		}
	}
	return out, nil
}
