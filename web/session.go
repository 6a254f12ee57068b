package web

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/patchbay/patchbay/auth"
)

// sessionCookie is the session's cookie: __Host- makes browsers insist
// on Secure, Path=/ and no Domain.
const sessionCookie = "__Host-patchbay-session"

// session is the logged-in person of a request.
type session struct {
	auth.Session
	hash string
}

// token is the credential the person acts with in the API.
func (s *session) token() auth.Token { return s.Session.Token() }

func setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// startSession logs a person in: a new session, its cookie, and a fresh
// CSRF secret.
func (u *UI) startSession(ctx context.Context, w http.ResponseWriter, user auth.User) error {
	secret, err := auth.RandomSecret(32)
	if err != nil {
		return err
	}
	csrf, err := auth.RandomSecret(32)
	if err != nil {
		return err
	}
	now := u.cfg.Now().UTC()
	se := auth.Session{User: user.Name, Role: user.Role, CSRF: csrf, Created: now, LastSeen: now, Expires: now.Add(u.cfg.SessionTTL)}
	if err := u.cfg.Users.CreateSession(ctx, auth.HashOf(secret), se); err != nil {
		return err
	}
	setCookie(w, sessionCookie, secret, int(u.cfg.SessionTTL.Seconds()))
	u.log.Info("login", "user", user.Name, "role", user.Role)
	u.sweep(ctx, now)
	return nil
}

// sweepEvery is how often a login deletes the sessions that ended.
const sweepEvery = 10 * time.Minute

// sweep deletes the ended sessions, at most every sweepEvery.
func (u *UI) sweep(ctx context.Context, now time.Time) {
	u.sweepMu.Lock()
	due := now.Sub(u.swept) >= sweepEvery
	if due {
		u.swept = now
	}
	u.sweepMu.Unlock()
	if !due {
		return
	}
	if n, err := u.cfg.Users.DeleteEnded(ctx, now, u.cfg.IdleTimeout); err != nil {
		u.log.Warn("delete ended sessions", "err", err)
	} else if n > 0 {
		u.log.Info("deleted ended sessions", "sessions", n)
	}
}

// current reads the request's session; nil when there is none or it
// ended.
func (u *UI) current(r *http.Request) (*session, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil, nil
	}
	hash := auth.HashOf(c.Value)
	se, err := u.cfg.Users.Session(r.Context(), hash, u.cfg.Now().UTC(), u.cfg.IdleTimeout)
	if errors.Is(err, auth.ErrSessionEnded) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &session{Session: se, hash: hash}, nil
}

// authed serves a page to a logged-in person (others go to the login
// page, coming back after) and checks the CSRF secret of every form.
func (u *UI) authed(h func(w http.ResponseWriter, r *http.Request, s *session) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w)
		s, err := u.current(r)
		if err != nil {
			u.fail(w, r, nil, err)
			return
		}
		if s == nil {
			if r.Method != http.MethodGet {
				u.errorPage(w, r, nil, http.StatusUnauthorized, "Your session has ended. Log in again, then repeat what you did.")
				return
			}
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost {
			if !sameOrigin(r) || !validCSRF(r, s.CSRF) {
				u.log.Warn("csrf refused", "user", s.User, "path", r.URL.Path)
				u.errorPage(w, r, s, http.StatusForbidden, "This form was refused: it did not carry this session's CSRF token (it was sent from another page or an old one). Reload the page and try again.")
				return
			}
		}
		if err := h(w, r, s); err != nil {
			u.fail(w, r, s, err)
		}
	})
}

// validCSRF compares the form's csrf field with the session's.
func validCSRF(r *http.Request, want string) bool {
	got := r.PostFormValue("csrf")
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// sameOrigin refuses requests a browser says come from another site
// (Sec-Fetch-Site, else Origin); requests without either (not from a
// browser) rest on the CSRF token alone.
func sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" || o == "null" {
		return o == ""
	}
	ou, err := url.Parse(o)
	return err == nil && ou.Host == r.Host
}

func (u *UI) logout(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := u.cfg.Users.EndSession(r.Context(), s.hash); err != nil {
		return err
	}
	setCookie(w, sessionCookie, "", -1)
	u.log.Info("logout", "user", s.User)
	http.Redirect(w, r, "/login?out=1", http.StatusSeeOther)
	return nil
}
