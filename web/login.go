package web

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"github.com/patchbay/patchbay/auth"
)

// loginCookie carries the login form's CSRF secret before there is a
// session (double submit: the cookie and the form field must agree).
const loginCookie = "__Host-patchbay-login"

type loginView struct {
	CSRF, Next, Error, Name string
	LoggedOut, SSO          bool
	SSOName                 string
}

// safeNext keeps a post-login destination on this site: a path, never
// another host ("//evil", "/\evil").
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}

func (u *UI) loginPage(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	if s, err := u.current(r); err == nil && s != nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	u.showLogin(w, r, http.StatusOK, "", "")
}

func (u *UI) showLogin(w http.ResponseWriter, r *http.Request, status int, msg, name string) {
	csrf, err := auth.RandomSecret(24)
	if err != nil {
		u.fail(w, r, nil, err)
		return
	}
	setCookie(w, loginCookie, csrf, 3600)
	v := loginView{CSRF: csrf, Next: safeNext(r.FormValue("next")), Error: msg, Name: name, LoggedOut: r.URL.Query().Get("out") != "", SSO: u.oidc != nil}
	if u.oidc != nil {
		v.SSOName = u.oidc.cfg.DisplayName
	}
	u.render(w, r, nil, status, "login", "Log in", v)
}

func (u *UI) loginSubmit(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	c, err := r.Cookie(loginCookie)
	if err != nil || c.Value == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostFormValue("csrf"))) != 1 || !sameOrigin(r) {
		u.showLogin(w, r, http.StatusForbidden, "The login form was refused (its CSRF token did not match): try again.", "")
		return
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	select {
	case u.hashing <- struct{}{}:
	case <-r.Context().Done():
		return
	}
	user, err := u.cfg.Users.CheckPassword(r.Context(), name, r.PostFormValue("password"))
	<-u.hashing
	if errors.Is(err, auth.ErrBadPassword) {
		u.log.Warn("login refused", "user", name, "remote", r.RemoteAddr)
		u.showLogin(w, r, http.StatusUnauthorized, "Wrong user name or password.", name)
		return
	}
	if err != nil {
		u.fail(w, r, nil, err)
		return
	}
	if err := u.startSession(r.Context(), w, user); err != nil {
		u.fail(w, r, nil, err)
		return
	}
	setCookie(w, loginCookie, "", -1)
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}
