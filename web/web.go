// Package web is patchbay's web UI: server-rendered pages (html/template,
// assets embedded, nothing loaded from outside, no build step) for the
// people the API's CLI does not suit. People log in with a local password
// (argon2id) or by OpenID Connect single sign-on; their sessions live in
// the database. Every page reads, and every form acts, through the
// server's own API handler, called in process as the logged-in person:
// the roles, validation and four-eyes rules are the API's, and an
// approval is that person's (user:NAME).
package web

import (
	"context"
	"embed"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/patchbay/patchbay/auth"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config is what the UI needs.
type Config struct {
	// API is the server's handler (server.Server.Handler): the UI's
	// reads and actions go through it, and it serves /api/, /healthz,
	// /readyz, /metrics and every path the UI does not.
	API http.Handler
	// Users keeps users and sessions (store.DB.Users).
	Users UserStore
	Log   *slog.Logger
	Now   func() time.Time
	// IdleTimeout ends a session unused this long (default 30 minutes);
	// SessionTTL ends it this long after login, used or not (12 hours).
	IdleTimeout, SessionTTL time.Duration
	// OIDC enables single sign-on; nil: local users only.
	OIDC *OIDCConfig
}

// UserStore keeps the people who log in and their sessions.
type UserStore interface {
	// CheckPassword returns the local user of a name and password;
	// auth.ErrBadPassword when they do not match.
	CheckPassword(ctx context.Context, name, password string) (auth.User, error)
	// SSOLogin records a single sign-on user's role at login;
	// auth.ErrLocalUser when a local user has the name.
	SSOLogin(ctx context.Context, name string, role auth.Role, now time.Time) error
	CreateSession(ctx context.Context, hash string, s auth.Session) error
	// Session reads a live session (auth.ErrSessionEnded otherwise).
	Session(ctx context.Context, hash string, now time.Time, idle time.Duration) (auth.Session, error)
	EndSession(ctx context.Context, hash string) error
	// DeleteEnded deletes the sessions ended at now.
	DeleteEnded(ctx context.Context, now time.Time, idle time.Duration) (int64, error)
}

// UI serves the web UI.
type UI struct {
	cfg   Config
	log   *slog.Logger
	pages *pages
	oidc  *oidcClient
	mux   *http.ServeMux
	// cache keeps fleet-wide aggregates for aggregateTTL.
	cacheMu    sync.Mutex
	cache      map[string]cached
	refreshing map[string]bool
	// swept is when ended sessions were last deleted (at a login, at
	// most every sweepEvery).
	sweepMu sync.Mutex
	swept   time.Time
	// hashing admits a few password checks at once: each argon2id check
	// takes 64 MiB, so a flood of logins waits instead of taking memory.
	hashing chan struct{}
}

// New makes the UI.
func New(ctx context.Context, cfg Config) (*UI, error) {
	if cfg.API == nil || cfg.Users == nil {
		return nil, errors.New("web: no API handler or user store")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 30 * time.Minute
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	p, err := parsePages()
	if err != nil {
		return nil, err
	}
	u := &UI{cfg: cfg, log: cfg.Log, pages: p, mux: http.NewServeMux(), cache: map[string]cached{}, refreshing: map[string]bool{}, hashing: make(chan struct{}, 4)}
	if cfg.OIDC != nil {
		if u.oidc, err = newOIDC(ctx, *cfg.OIDC); err != nil {
			return nil, err
		}
	}
	u.routes()
	return u, nil
}

// Handler serves the UI, and hands every path it does not serve to the
// API.
func (u *UI) Handler() http.Handler { return u.mux }

func (u *UI) routes() {
	m := u.mux
	for _, p := range []string{"/api/", "/healthz", "/readyz", "/metrics", "/"} {
		m.Handle(p, u.cfg.API)
	}
	static, _ := fs.Sub(staticFS, "static")
	m.Handle("GET /static/", http.StripPrefix("/static/", cacheStatic(http.FileServerFS(static))))
	m.HandleFunc("GET /login", u.loginPage)
	m.HandleFunc("POST /login", u.loginSubmit)
	m.HandleFunc("GET /auth/oidc", u.oidcStart)
	m.HandleFunc("GET /auth/oidc/callback", u.oidcCallback)
	page := func(pattern string, h func(w http.ResponseWriter, r *http.Request, s *session) error) {
		m.Handle(pattern, u.authed(h))
	}
	page("POST /logout", u.logout)
	page("GET /{$}", u.overview)
	page("GET /findings", u.findings)
	page("GET /findings/{id}", u.finding)
	page("GET /hosts", u.hosts)
	page("GET /hosts/{id}", u.host)
	page("GET /vulns", u.vulns)
	page("GET /vulns/{id}", u.vuln)
	page("GET /patches", u.patches)
	page("POST /patches/plan", u.planPatch)
	page("GET /plans", u.plans)
	page("GET /rollouts", u.rollouts)
	page("GET /plans/{id}", u.plan)
	page("GET /plans/{id}/progress", u.planProgress)
	page("POST /plans/{id}/{action}", u.planAction)
	page("GET /schedules", u.schedules)
	page("GET /schedules/{name}", u.schedule)
	page("POST /schedules/{name}/{action}", u.scheduleAction)
	page("GET /policy", u.policy)
	page("GET /audit", u.audit)
	page("GET /backups", u.backups)
	page("POST /backups", u.backupNow)
	page("GET /feeds", u.feeds)
	page("GET /kpi", u.kpiPage)
	page("GET /templates", u.templates)
	page("POST /templates/{name}", u.generateTemplate)
	page("GET /scorecards", u.scorecards)
	page("GET /scorecards/{name}", u.scorecard)
	page("GET /initiatives/{name}", u.initiative)
	page("GET /services/{name}", u.service)
	page("GET /teams/{name}", u.team)
	page("GET /fixes", u.fixes)
	page("POST /fixes/propose", u.proposeFix)
	page("POST /fixes/{id}/refresh", u.refreshFix)
}

// cacheStatic lets browsers keep the embedded assets for an hour.
func cacheStatic(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		h.ServeHTTP(w, r)
	})
}

// securityHeaders are set on every page: nothing from elsewhere, no
// framing, no inline script.
func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}
