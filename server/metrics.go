package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/patchbay/patchbay/store"
)

type metrics struct {
	reg            *prometheus.Registry
	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	checkins       *prometheus.CounterVec
	enrollments    prometheus.Counter
	ingestRows     prometheus.Counter
	ingestSeconds  prometheus.Histogram
	rematchSeconds prometheus.Histogram
	checkpoints    prometheus.Counter
	leader         prometheus.Gauge
	stepSeconds    prometheus.Histogram
	jobResults     *prometheus.CounterVec
	handler        http.Handler
}

func newMetrics(db *store.DB) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "patchbay_http_requests_total",
			Help: "HTTP requests by route and status code."}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "patchbay_http_request_duration_seconds",
			Help: "HTTP request latency by route.", Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}, []string{"route"}),
		checkins: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "patchbay_checkins_total",
			Help: "Agent check-ins by what they changed: unchanged, facts, updates, inventory."}, []string{"kind"}),
		enrollments: prometheus.NewCounter(prometheus.CounterOpts{Name: "patchbay_enrollments_total", Help: "Hosts enrolled."}),
		ingestRows:  prometheus.NewCounter(prometheus.CounterOpts{Name: "patchbay_ingest_packages_total", Help: "Inventory rows ingested."}),
		ingestSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "patchbay_ingest_duration_seconds",
			Help: "Time to store an inventory and recompute its host's findings.", Buckets: prometheus.DefBuckets}),
		rematchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "patchbay_rematch_duration_seconds",
			Help: "Time of an incremental rematch after a feed change.", Buckets: prometheus.DefBuckets}),
		checkpoints: prometheus.NewCounter(prometheus.CounterOpts{Name: "patchbay_audit_checkpoints_total", Help: "Signed audit checkpoints exported."}),
		leader:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "patchbay_leader", Help: "1 while this replica holds the scheduler lease."}),
		stepSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "patchbay_rollout_step_duration_seconds",
			Help: "Time of a rollout scheduler step that changed something.", Buckets: prometheus.DefBuckets}),
		jobResults: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "patchbay_job_results_total",
			Help: "Job results reported by agents, by outcome."}, []string{"outcome"}),
	}
	reg.MustRegister(m.requests, m.duration, m.checkins, m.enrollments, m.ingestRows, m.ingestSeconds, m.rematchSeconds, m.checkpoints, m.leader, m.stepSeconds, m.jobResults,
		collectors.NewDBStatsCollector(db.SQL(), db.Backend),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	return m
}

func (m *metrics) request(route string, code int, d time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request, _ *caller) error {
	s.metrics.handler.ServeHTTP(w, r)
	return nil
}
