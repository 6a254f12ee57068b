// Package server is patchbay's HTTP server: the JSON API under /api/v1
// for people, automation and agents, health and metrics endpoints, and the
// work one replica runs for all (feed sync, incremental rematch, audit
// checkpoints) under a leader lease. Any replica serves any request: all
// state is in the database.
package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/buildinfo"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/monitor"
	"github.com/patchbay/patchbay/policy"
	"github.com/patchbay/patchbay/rollout"
	"github.com/patchbay/patchbay/store"
)

// Config is what a server needs.
type Config struct {
	DB *store.DB
	// Kinds are the document kinds the policy endpoints accept
	// (kinds.All at the composition root).
	Kinds policy.Kinds
	Log   *slog.Logger
	// Build identifies the binary in /healthz; zero means buildinfo.Get.
	Build buildinfo.Info
	// ReplicaID names this process in leases and logs.
	ReplicaID string
	// AuditKey signs audit checkpoints.
	AuditKey ed25519.PrivateKey
	// JobKey signs jobs (LoadJobKey reads it from its file); every
	// replica is given the same.
	JobKey ed25519.PrivateKey
	// CheckpointDir receives signed checkpoints of the audit chain head;
	// CheckpointURL, when set, receives them by POST as well.
	CheckpointDir   string
	CheckpointURL   string
	CheckpointEvery time.Duration // at most 15 minutes
	// Feeds says where the leader gets advisories, and how often.
	Feeds        FeedSource
	SyncInterval time.Duration
	// ApplyWait bounds the re-decision of findings inside a policy apply
	// request; the leader finishes what is left.
	ApplyWait time.Duration
	// ReconcileEvery is how often the leader checks that findings follow
	// the policy (expired exceptions, unfinished re-decisions).
	ReconcileEvery time.Duration
	// Checkin is the interval agents are asked to keep.
	Checkin time.Duration
	// MaxBody limits request bodies (after decompression), in bytes.
	MaxBody int64
	// LargeBody is the size past which a body needs one of LargeBodies
	// slots (one per credential at a time), waiting up to BodyWait for
	// one: what bounds the memory of bodies read at once.
	LargeBody   int64
	LargeBodies int
	BodyWait    time.Duration
	// BodyTimeout bounds the reading of a request body (a slow sender
	// holds its connection no longer).
	BodyTimeout time.Duration
	// LeaseTTL and ElectEvery tune the leader election.
	LeaseTTL, ElectEvery time.Duration
	// TouchEvery is how often check-in times of unchanged hosts are
	// written, in one transaction.
	TouchEvery time.Duration
	// StepEvery is how often the leader advances the active rollouts
	// (and at once when one is started, controlled or a job reported to
	// this replica); PollEvery how often each replica looks for jobs
	// dispatched by the leader, to wake the agents' long polls.
	StepEvery, PollEvery time.Duration
	// Webhooks receive notifications; NotifyBackoff is the first retry's
	// delay (doubled at each retry).
	// AgentStale: a host not seen (check-in or job poll) for this long
	// has no active agent; a rollout reports it as no_agent.
	AgentStale time.Duration
	Webhooks   []Webhook
	// TeamWebhooks: a team's own webhook (its Team document's) is notified
	// of its initiative reminders and level drops too (an opt-in: policy
	// documents then choose where the server posts).
	TeamWebhooks  bool
	NotifyBackoff time.Duration
	// EmergencyEvery is how often (in real time) the leader looks for new
	// emergency patches of the PatchSchedules with an emergency lane (1m).
	EmergencyEvery time.Duration
	// KPIRetention is how long the KPI history is kept (0: 400 days).
	KPIRetention time.Duration
	Now          func() time.Time
	// PrometheusURL and AlertmanagerURL are what the rollout strategies'
	// gates query ("" : not configured, and the gates fail closed).
	PrometheusURL, AlertmanagerURL string
	// AlertWindow: an alert that starts within it after a job on its
	// host is linked to the job (DefaultAlertWindow when zero).
	AlertWindow time.Duration
	// Backup is the leader's scheduled backups (none without a Dir).
	Backup BackupSchedule
	// Fix delivers application fixes to services' repositories.
	Fix FixConfig
}

// Server serves the API.
type Server struct {
	cfg     Config
	bodies  *bodyGate
	sched   *rollout.Scheduler // the leader's rollout steps
	db      *store.DB
	log     *slog.Logger
	mux     *http.ServeMux
	routes  []Route
	metrics *metrics
	touches *toucher
	ready   chan struct{}
	readyMu sync.Once
	feedsMu sync.Mutex
	// refreshMu serializes this process's feed refreshes; refreshed is
	// when the last one succeeded, with its result.
	refreshMu     sync.Mutex
	refreshed     time.Time
	refreshResult RefreshResult
	term          atomic.Int64 // the lease term while leading, else 0
	index         *advisoryCache
	pol           policyCache
	// fleetWide admits one fleet-wide re-decision at a time.
	fleetWide chan struct{}
	jobKeyMu  sync.Mutex
	jobKey    ed25519.PrivateKey
	stepNow   chan struct{}
	backups   *backups
	jobs      *jobHub
	// scheduleMu serialises schedule evaluations; lastEmergency is when
	// the emergency lanes were last looked at.
	scheduleMu    sync.Mutex
	lastEmergency time.Time
	// webhookClient sends notifications.
	webhookClient *http.Client
	// draining is closed when the HTTP server shuts down: long polls end.
	draining  chan struct{}
	drainOnce sync.Once
	// snapDay is the day of the last KPI snapshot this process took.
	snapMu  sync.Mutex
	snapDay time.Time
}

// Drain ends the agents' long polls (they answer at once, with no job):
// register it with http.Server.RegisterOnShutdown so a graceful shutdown
// is not held up by them.
func (s *Server) Drain() { s.drainOnce.Do(func() { close(s.draining) }) }

// Route is one API route and the role it needs.
type Route struct {
	Method  string
	Pattern string // net/http pattern path: /api/v1/hosts/{id}
	// Need is the role required; "" for public routes, "enrollment" for
	// the enrollment endpoint (enrollment tokens only).
	Need auth.Role
	h    func(w http.ResponseWriter, r *http.Request, c *caller) error
}

// needEnrollment marks the route enrollment tokens reach.
const needEnrollment auth.Role = "enrollment"

// caller is the authenticated credential of a request.
type caller struct {
	tok    auth.Token
	secret string
}

func (c *caller) actor() string {
	if c == nil {
		return "anonymous"
	}
	switch c.tok.Kind {
	case auth.KindHost:
		return "host:" + c.tok.Subject
	case auth.KindUser:
		return "user:" + c.tok.Subject // the person, whichever session
	default:
		return fmt.Sprintf("%s:%s", c.tok.Kind, c.tok.ID)
	}
}

// New makes a server.
func New(cfg Config) (*Server, error) {
	if cfg.DB == nil {
		return nil, errors.New("server: no database")
	}
	// One server process per SQLite file (held until the DB is closed).
	if err := cfg.DB.LockForServer(); err != nil {
		return nil, err
	}
	if len(cfg.Kinds.Names()) == 0 {
		return nil, errors.New("server: no document kinds (kinds.All)")
	}
	if len(cfg.JobKey) != ed25519.PrivateKeySize {
		return nil, errors.New("server: no job-signing key (LoadJobKey)")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 64 << 20
	}
	if cfg.LargeBody <= 0 {
		cfg.LargeBody = 1 << 20
	}
	if cfg.LargeBodies <= 0 {
		cfg.LargeBodies = 1
	}
	if cfg.BodyWait <= 0 {
		cfg.BodyWait = 30 * time.Second
	}
	if cfg.BodyTimeout <= 0 {
		cfg.BodyTimeout = time.Minute
	}
	if cfg.Checkin <= 0 {
		cfg.Checkin = 5 * time.Minute
	}
	if cfg.CheckpointEvery <= 0 || cfg.CheckpointEvery > 15*time.Minute {
		cfg.CheckpointEvery = 15 * time.Minute
	}
	if cfg.ApplyWait <= 0 {
		cfg.ApplyWait = time.Minute
	}
	if cfg.ReconcileEvery <= 0 {
		cfg.ReconcileEvery = time.Minute
	}
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = 6 * time.Hour
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 15 * time.Second
	}
	if cfg.ElectEvery <= 0 {
		cfg.ElectEvery = cfg.LeaseTTL / 3
	}
	if cfg.TouchEvery <= 0 {
		cfg.TouchEvery = time.Second
	}
	if cfg.AlertWindow <= 0 {
		cfg.AlertWindow = DefaultAlertWindow
	}
	if cfg.AgentStale <= 0 {
		cfg.AgentStale = max(3*cfg.Checkin, 15*time.Minute)
	}
	if cfg.StepEvery <= 0 {
		cfg.StepEvery = time.Second
	}
	if cfg.EmergencyEvery <= 0 {
		cfg.EmergencyEvery = time.Minute
	}
	if cfg.PollEvery <= 0 {
		cfg.PollEvery = 500 * time.Millisecond
	}
	if cfg.NotifyBackoff <= 0 {
		cfg.NotifyBackoff = 30 * time.Second
	}
	if cfg.ReplicaID == "" {
		cfg.ReplicaID = "replica"
	}
	s := &Server{cfg: cfg, db: cfg.DB, log: cfg.Log, mux: http.NewServeMux(), ready: make(chan struct{}), fleetWide: make(chan struct{}, 1),
		stepNow: make(chan struct{}, 1), jobs: newJobHub(), webhookClient: &http.Client{Timeout: 15 * time.Second}, draining: make(chan struct{})}
	s.metrics = newMetrics(cfg.DB)
	s.metrics.reg.MustRegister(newKPICollector(s))
	s.metrics.reg.MustRegister(newOpsCollector(s))
	s.backups = newBackups(s.metrics.reg)
	s.bodies = newBodyGate(cfg.LargeBody, cfg.LargeBodies, cfg.BodyWait)
	s.index = newAdvisoryCache(cfg.DB)
	s.touches = &toucher{db: cfg.DB, seen: map[string]time.Time{}}
	s.routes = s.routeTable()
	for _, rt := range s.routes {
		s.mux.Handle(rt.Method+" "+rt.Pattern, s.wrap(rt))
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, http.StatusNotFound, api.CodeNotFound, "no such route: "+r.Method+" "+r.URL.Path, "")
	})
	s.sched = &rollout.Scheduler{
		Store: s.db.Rollouts,
		Policy: func(ctx context.Context) (*rollout.Policy, error) {
			_, rp, err := s.rolloutPolicy(ctx)
			return rp, err
		},
		Key:        s.JobKey,
		AgentStale: s.cfg.AgentStale,
		Actor:      s.actor(),
		Targets:    s.notifyTargets(),
		Monitor:    &monitor.Client{PrometheusURL: cfg.PrometheusURL, AlertmanagerURL: cfg.AlertmanagerURL},
		Services:   s.hostServices,
	}
	return s, nil
}

// Routes lists the API's routes.
func (s *Server) Routes() []Route { return s.routes }

// Handler is the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.mux }

func (s *Server) routeTable() []Route {
	p := api.Prefix
	return []Route{
		{"GET", "/healthz", "", s.healthz},
		{"GET", "/readyz", "", s.readyz},
		{"GET", "/metrics", "", s.serveMetrics},
		{"GET", p + "/openapi.json", "", s.openapi},
		{"GET", p + "/whoami", auth.Viewer, s.whoami},
		{"POST", p + "/agent/enroll", needEnrollment, s.enroll},
		{"POST", p + "/agent/checkin", auth.Agent, s.checkin},
		{"GET", p + "/agent/jobs", auth.Agent, s.agentJobs},
		{"POST", p + "/agent/jobs/result", auth.Agent, s.jobResult},
		{"GET", p + "/hosts", auth.Viewer, s.listHosts},
		{"GET", p + "/hosts/{id}", auth.Viewer, s.getHost},
		{"PUT", p + "/hosts/{id}/labels", auth.Operator, s.setLabels},
		{"POST", p + "/hosts/{id}/revoke", auth.Admin, s.revokeHost},
		{"GET", p + "/findings", auth.Viewer, s.listFindings},
		{"GET", p + "/findings/{id}", auth.Viewer, s.getFinding},
		{"POST", p + "/policy/apply", auth.Admin, s.applyPolicy},
		{"GET", p + "/policy", auth.Viewer, s.listPolicy},
		{"GET", p + "/policy/history", auth.Viewer, s.policyHistory},
		{"PUT", p + "/services/{name}/inventory", auth.Operator, s.uploadServiceInventory},
		{"POST", p + "/services/{name}/fixes", auth.Operator, s.proposeFix},
		{"GET", p + "/fixes", auth.Viewer, s.listFixes},
		{"POST", p + "/fixes/{id}/refresh", auth.Operator, s.refreshFix},
		{"POST", p + "/plans", auth.Operator, s.createPlan},
		{"GET", p + "/plans", auth.Viewer, s.listPlans},
		{"GET", p + "/plans/{id}", auth.Viewer, s.getPlan},
		{"POST", p + "/plans/{id}/approve", auth.Operator, s.decidePlan(true)},
		{"POST", p + "/plans/{id}/reject", auth.Operator, s.decidePlan(false)},
		{"POST", p + "/plans/{id}/start", auth.Operator, s.startRollout},
		{"POST", p + "/plans/{id}/pause", auth.Operator, s.controlRollout("pause")},
		{"POST", p + "/plans/{id}/resume", auth.Operator, s.controlRollout("resume")},
		{"POST", p + "/plans/{id}/promote", auth.Operator, s.controlRollout("promote")},
		{"POST", p + "/plans/{id}/abort", auth.Operator, s.controlRollout("abort")},
		{"GET", p + "/notifications", auth.Viewer, s.listNotifications},
		{"POST", p + "/alerts", auth.Operator, s.receiveAlerts},
		{"GET", p + "/alerts", auth.Viewer, s.listAlerts},
		{"GET", p + "/events", auth.Viewer, s.listEvents},
		{"GET", p + "/backups", auth.Admin, s.listBackups},
		{"POST", p + "/backups", auth.Admin, s.createBackup},
		{"GET", p + "/schedules", auth.Viewer, s.listSchedules},
		{"GET", p + "/schedules/{name}", auth.Viewer, s.getSchedule},
		{"POST", p + "/schedules/{name}/pause", auth.Operator, s.pauseSchedule(true)},
		{"POST", p + "/schedules/{name}/resume", auth.Operator, s.pauseSchedule(false)},
		{"GET", p + "/vulns", auth.Viewer, s.listVulns},
		{"GET", p + "/vulns/{id}", auth.Viewer, s.getVuln},
		{"GET", p + "/feeds", auth.Viewer, s.feedStatus},
		{"POST", p + "/feeds/refresh", auth.Operator, s.refreshNow},
		{"GET", p + "/tokens", auth.Admin, s.listTokens},
		{"POST", p + "/tokens", auth.Admin, s.createToken},
		{"DELETE", p + "/tokens/{id}", auth.Admin, s.revokeToken},
		{"GET", p + "/audit", auth.Admin, s.exportAudit},
		{"GET", p + "/audit/key", auth.Admin, s.auditKey},
		{"GET", p + "/kpi", auth.Viewer, s.getKPI},
		{"GET", p + "/kpi/history", auth.Viewer, s.getKPIHistory},
		{"GET", p + "/kpi/findings", auth.Viewer, s.getFindingsAsOf},
		{"POST", p + "/audit/checkpoint", auth.Admin, s.checkpointNow},
		{"GET", p + "/templates", auth.Viewer, s.listTemplates},
		{"POST", p + "/templates/{name}/generate", auth.Viewer, s.generateTemplate},
		{"GET", p + "/scorecards", auth.Viewer, s.listScorecards},
		{"GET", p + "/scorecards/{name}", auth.Viewer, s.getScorecard},
		{"GET", p + "/initiatives", auth.Viewer, s.listInitiatives},
		{"GET", p + "/initiatives/{name}", auth.Viewer, s.getInitiative},
		{"GET", p + "/scores/history", auth.Viewer, s.scoreHistory},
		{"POST", p + "/services/{name}/facts", auth.Operator, s.pushFacts},
		{"GET", p + "/services/{name}", auth.Viewer, s.getService},
		{"GET", p + "/teams/{name}", auth.Viewer, s.getTeam},
	}
}

// statusWriter records the status for metrics and logs.
type statusWriter struct {
	http.ResponseWriter
	status int
}

// Unwrap lets http.ResponseController reach the connection (deadlines,
// flushes).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// wrap authenticates, authorises, limits the body, and records metrics.
func (s *Server) wrap(rt Route) http.Handler {
	name := rt.Method + " " + rt.Pattern
	params := wildcards(rt.Pattern)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		if err := s.serve(rt, params, sw, r); err != nil {
			s.writeError(sw, r, err)
		}
		if sw.status == 0 {
			sw.WriteHeader(http.StatusNoContent)
		}
		s.metrics.request(name, sw.status, time.Since(start))
	})
}

func (s *Server) serve(rt Route, params []string, w http.ResponseWriter, r *http.Request) (err error) {
	var gb *gatedBody
	defer func() {
		// An answer given before the body was read closes the connection:
		// net/http would otherwise read what is left of the body first, as
		// slowly as the client sends it.
		if err != nil && r.ContentLength != 0 && (gb == nil || !gb.eof) {
			w.Header().Set("Connection", "close")
		}
	}()
	var c *caller
	if rt.Need != "" {
		tok, secret, err := s.authenticate(r)
		if err != nil {
			return err
		}
		c = &caller{tok: tok, secret: secret}
		switch {
		case rt.Need == needEnrollment:
			if tok.Kind != auth.KindEnrollment {
				return errForbidden("this endpoint takes an enrollment token")
			}
		case tok.Kind == auth.KindEnrollment:
			return errForbidden("an enrollment token only enrolls agents")
		case !tok.Role.Allows(rt.Need):
			return errForbidden(fmt.Sprintf("role %s may not %s %s (needs %s)", tok.Role, rt.Method, rt.Pattern, rt.Need))
		}
	}
	// Text is checked once the caller may call the route: one without a
	// credential learns nothing but 401.
	if err := checkParams(params, r); err != nil {
		return err
	}
	if r.ContentLength == 0 {
		return rt.h(w, r, c)
	}
	if r.ContentLength > s.cfg.MaxBody && r.Header.Get("Content-Encoding") == "" {
		return &http.MaxBytesError{Limit: s.cfg.MaxBody} // declared too large: refused unread
	}
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Now().Add(s.cfg.BodyTimeout)); err != nil {
		rc = nil // not a connection that takes deadlines (a test recorder)
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBody)
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return errBadRequest("body: not gzip: "+err.Error(), "")
		}
		defer zr.Close()
		r.Body = &limitedBody{r: io.LimitReader(zr, s.cfg.MaxBody+1), max: s.cfg.MaxBody, c: r.Body}
	}
	holder := r.RemoteAddr // requests without a credential (none take bodies today)
	if c != nil {
		holder = c.tok.ID
	}
	gb = &gatedBody{r: r.Body, ctx: r.Context(), g: s.bodies, holder: holder, rc: rc}
	defer gb.done()
	r.Body = gb
	return rt.h(w, r, c)
}

// limitedBody fails a decompressed body past the limit (a gzip bomb).
type limitedBody struct {
	r   io.Reader
	n   int64
	max int64
	c   io.Closer
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	if b.n > b.max {
		return n, &http.MaxBytesError{Limit: b.max}
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.c.Close() }

func (s *Server) authenticate(r *http.Request) (auth.Token, string, error) {
	// The web UI's in-process calls carry the logged-in person.
	if t, ok := auth.PersonFrom(r.Context()); ok {
		return t, "", nil
	}
	secret, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	secret = strings.TrimSpace(secret)
	if !ok || secret == "" {
		return auth.Token{}, "", errUnauthorized("missing credential: send Authorization: Bearer <token>")
	}
	tok, err := s.db.Tokens.Authenticate(r.Context(), secret, s.cfg.Now())
	if err != nil {
		// Only the holder of the secret learns why it is refused: an
		// expired token then reads as expired, not as a wrong one.
		switch {
		case errors.Is(err, auth.ErrExpired):
			return tok, "", errUnauthorized(fmt.Sprintf("credential expired at %s (token %s); create a new one", tok.Expires.UTC().Format(time.RFC3339), tok.ID))
		case errors.Is(err, auth.ErrRevoked):
			return tok, "", errUnauthorized(fmt.Sprintf("credential revoked (token %s)", tok.ID))
		case errors.Is(err, auth.ErrExhausted):
			return tok, "", errUnauthorized(fmt.Sprintf("enrollment token %s has no uses left", tok.ID))
		case errors.Is(err, auth.ErrUnknown):
			return tok, "", errUnauthorized("unknown credential: no token has this secret")
		}
		return tok, "", err
	}
	return tok, secret, nil
}

// httpError is an error with its response.
type httpError struct {
	status int
	body   api.Error
}

func (e *httpError) Error() string { return e.body.Error }

func errBadRequest(msg, field string) error {
	return &httpError{http.StatusBadRequest, api.Error{Error: msg, Code: api.CodeBadRequest, Field: field}}
}
func errUnauthorized(msg string) error {
	return &httpError{http.StatusUnauthorized, api.Error{Error: msg, Code: api.CodeUnauthorized}}
}
func errForbidden(msg string) error {
	return &httpError{http.StatusForbidden, api.Error{Error: msg, Code: api.CodeForbidden}}
}
func errNotFound(msg string) error {
	return &httpError{http.StatusNotFound, api.Error{Error: msg, Code: api.CodeNotFound}}
}
func errConflict(code, msg string) error {
	return &httpError{http.StatusConflict, api.Error{Error: msg, Code: code}}
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		if he.status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="patchbay"`)
		}
		writeJSON(w, he.status, he.body)
	case errors.As(err, &mbe):
		writeErr(w, http.StatusRequestEntityTooLarge, api.CodeTooLarge, fmt.Sprintf("request body larger than %d bytes", mbe.Limit), "")
	case errors.Is(err, fleet.ErrNotFound):
		writeErr(w, http.StatusNotFound, api.CodeNotFound, err.Error(), "")
	case errors.Is(err, context.Canceled):
		// The client went away; nothing to answer.
	default:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeErr(w, http.StatusInternalServerError, api.CodeInternal, "internal error (logged on the server)", "")
	}
}

func writeErr(w http.ResponseWriter, status int, code, msg, field string) {
	writeJSON(w, status, api.Error{Error: msg, Code: code, Field: field})
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// readBody reads a request body whole, in one allocation when its length
// is declared.
func readBody(r *http.Request) ([]byte, error) {
	var buf bytes.Buffer
	if n := r.ContentLength; n > 0 && n <= 1<<30 && r.Header.Get("Content-Encoding") == "" {
		// A large body takes its slot before its buffer is made.
		if gb, ok := r.Body.(*gatedBody); ok {
			if err := gb.reserve(n); err != nil {
				return nil, err
			}
		}
		buf.Grow(int(n) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(r.Body)
	return buf.Bytes(), err
}

// decode reads a JSON body into v. Malformed JSON is a 400 naming the
// field (for a wrong type) or the byte offset (for a syntax error), and so
// is a string that is not text (checkJSONText).
func decode(r *http.Request, v any, strict bool) error {
	body, err := readBody(r)
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &mbe), errors.As(err, new(*httpError)):
		return err // too large (413), or the body gate's 429 or 503
	case errors.As(err, &ne) && ne.Timeout():
		return &httpError{http.StatusRequestTimeout, api.Error{Error: "body: not sent in time", Code: api.CodeTimeout}}
	case err != nil:
		return errBadRequest("body: "+err.Error(), "")
	}
	if err := checkJSONText(body); err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return errBadRequest("body: empty; want a JSON object", "")
	}
	if strict {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err = dec.Decode(v); err == nil && dec.More() {
			return errBadRequest("body: more than one JSON value", "")
		}
	} else {
		// In place: a Decoder would copy the (large) body once more.
		err = json.Unmarshal(body, v)
	}
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se) && strings.Contains(se.Error(), "after top-level value"):
		return errBadRequest("body: more than one JSON value", "")
	case errors.As(err, &se) && se.Error() == "unexpected end of JSON input":
		return errBadRequest("body: truncated JSON", "")
	case errors.Is(err, io.EOF):
		return errBadRequest("body: empty; want a JSON object", "")
	case errors.As(err, &se):
		return errBadRequest(fmt.Sprintf("body: malformed JSON at byte %d: %v", se.Offset, err), "")
	case errors.As(err, &te):
		field := te.Field
		return errBadRequest(fmt.Sprintf("%s: want %s, got JSON %s", field, te.Type, te.Value), field)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errBadRequest("body: truncated JSON", "")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return errBadRequest("unknown field "+f, f)
	default:
		return errBadRequest("body: "+err.Error(), "")
	}
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request, _ *caller) error {
	b := s.cfg.Build
	if b.Version == "" {
		b = buildinfo.Get()
	}
	return writeJSON(w, http.StatusOK, struct {
		Status  string         `json:"status"`
		Version string         `json:"version"`
		Build   buildinfo.Info `json:"build"`
	}{"ok", b.Short(), b})
}

// readyz is ready when the database answers.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request, _ *caller) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.db.SQL().PingContext(ctx); err != nil {
		writeErr(w, http.StatusServiceUnavailable, api.CodeUnavailable, "database unreachable: "+err.Error(), "")
		return nil
	}
	return writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "backend": s.db.Backend, "leader": s.term.Load() != 0})
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request, c *caller) error {
	return writeJSON(w, http.StatusOK, api.Whoami{Token: c.tok})
}

// DB is the server's database.
func (s *Server) DB() *store.DB { return s.db }

// matcher keeps findings in the database, matched against the advisory
// cache and decided by tr.
func (s *Server) matcher(tr fleet.Triage) fleet.Matcher {
	return fleet.Matcher{Inventories: s.db.Fleet, Index: s.db.Fleet, History: s.db.Findings, Source: s.index, Triage: tr}
}
