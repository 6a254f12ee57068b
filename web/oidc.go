package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/patchbay/patchbay/auth"
)

// OIDCConfig is the single sign-on provider: an OpenID Connect issuer,
// this server's client there, and the groups that give roles.
type OIDCConfig struct {
	Issuer       string
	ClientID     string
	ClientSecret string
	// RedirectURL is this server's callback as the provider knows it:
	// https://patchbay.example.org/auth/oidc/callback.
	RedirectURL string
	// GroupsClaim names the ID token's claim listing the person's groups
	// (default "groups"); UserClaim the claim that names them (default
	// "preferred_username", then "email", then "sub").
	GroupsClaim, UserClaim string
	// Roles maps a group to a role; a person gets the highest their
	// groups give, and one whose groups give none is refused.
	Roles map[string]auth.Role
	// DisplayName is the provider's name on the login button.
	DisplayName string
	// Scopes are asked for beside openid (default profile, email, groups).
	Scopes []string
	// Client makes the requests to the provider (nil: a default client).
	Client *http.Client
}

// oidcClient talks to the provider; discovery happens at first use (and
// again after a failure), so a provider down at start does not stop the
// server.
type oidcClient struct {
	cfg OIDCConfig
	mu  sync.Mutex
	p   *oidc.Provider
}

// ParseRoleMap parses GROUP=ROLE pairs (the server's --oidc-role).
func ParseRoleMap(pairs []string) (map[string]auth.Role, error) {
	out := map[string]auth.Role{}
	for _, p := range pairs {
		g, r, ok := strings.Cut(p, "=")
		if !ok || g == "" {
			return nil, fmt.Errorf("%q: want GROUP=ROLE (admins=admin)", p)
		}
		role, err := auth.PersonRole(r)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", p, err)
		}
		out[g] = role
	}
	return out, nil
}

func newOIDC(_ context.Context, cfg OIDCConfig) (*oidcClient, error) {
	switch {
	case cfg.Issuer == "":
		return nil, errors.New("single sign-on: no issuer URL")
	case cfg.ClientID == "":
		return nil, errors.New("single sign-on: no client id")
	case cfg.RedirectURL == "":
		return nil, errors.New("single sign-on: no redirect URL (https://HOST/auth/oidc/callback)")
	case len(cfg.Roles) == 0:
		return nil, errors.New("single sign-on: no group gives a role (GROUP=ROLE)")
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	if cfg.DisplayName == "" {
		cfg.DisplayName = "single sign-on"
	}
	if cfg.Scopes == nil {
		cfg.Scopes = []string{"profile", "email", "groups"}
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 15 * time.Second}
	}
	return &oidcClient{cfg: cfg}, nil
}

func (o *oidcClient) provider(ctx context.Context) (*oidc.Provider, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.p != nil {
		return o.p, nil
	}
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, o.cfg.Client), o.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("single sign-on: discovery at %s: %w", o.cfg.Issuer, err)
	}
	o.p = p
	return p, nil
}

func (o *oidcClient) oauth(p *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{ClientID: o.cfg.ClientID, ClientSecret: o.cfg.ClientSecret, RedirectURL: o.cfg.RedirectURL,
		Endpoint: p.Endpoint(), Scopes: append([]string{oidc.ScopeOpenID}, o.cfg.Scopes...)}
}

// role is the highest role the groups give ("" for none).
func (o *oidcClient) role(groups []string) auth.Role {
	var best auth.Role
	for _, g := range groups {
		if r, ok := o.cfg.Roles[g]; ok && (best == "" || r.Allows(best)) {
			best = r
		}
	}
	return best
}

// oidcCookie carries the login's state, nonce, PKCE verifier and where
// to go after, between the redirect to the provider and its callback.
const oidcCookie = "__Host-patchbay-oidc"

func (u *UI) oidcStart(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	if u.oidc == nil {
		u.errorPage(w, r, nil, http.StatusNotFound, "Single sign-on is not configured on this server.")
		return
	}
	p, err := u.oidc.provider(r.Context())
	if err != nil {
		u.log.Error("oidc", "err", err)
		u.errorPage(w, r, nil, http.StatusBadGateway, "The single sign-on provider cannot be reached; try again later or log in with a password.")
		return
	}
	state, err1 := auth.RandomSecret(24)
	nonce, err2 := auth.RandomSecret(24)
	if err := errors.Join(err1, err2); err != nil {
		u.fail(w, r, nil, err)
		return
	}
	verifier := oauth2.GenerateVerifier()
	next := safeNext(r.URL.Query().Get("next"))
	http.SetCookie(w, &http.Cookie{Name: oidcCookie, Value: strings.Join([]string{state, nonce, verifier, url.QueryEscape(next)}, "|"), Path: "/", MaxAge: 600,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, u.oidc.oauth(p).AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), http.StatusFound)
}

func (u *UI) oidcCallback(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	if u.oidc == nil {
		u.errorPage(w, r, nil, http.StatusNotFound, "Single sign-on is not configured on this server.")
		return
	}
	refuse := func(status int, msg string, err error) {
		u.log.Warn("single sign-on refused", "why", msg, "err", err)
		u.errorPage(w, r, nil, status, msg)
	}
	c, err := r.Cookie(oidcCookie)
	parts := []string{}
	if err == nil {
		parts = strings.SplitN(c.Value, "|", 4)
	}
	q := r.URL.Query()
	if len(parts) != 4 || q.Get("state") == "" || q.Get("state") != parts[0] {
		refuse(http.StatusBadRequest, "Single sign-on: this answer does not belong to a login started here (state mismatch). Log in again.", err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: oidcCookie, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	if e := q.Get("error"); e != "" {
		refuse(http.StatusUnauthorized, "Single sign-on: the provider refused: "+e+" "+q.Get("error_description"), nil)
		return
	}
	ctx := oidc.ClientContext(r.Context(), u.oidc.cfg.Client)
	p, err := u.oidc.provider(ctx)
	if err != nil {
		refuse(http.StatusBadGateway, "The single sign-on provider cannot be reached; try again later.", err)
		return
	}
	tok, err := u.oidc.oauth(p).Exchange(ctx, q.Get("code"), oauth2.VerifierOption(parts[2]))
	if err != nil {
		refuse(http.StatusUnauthorized, "Single sign-on: the login code was refused by the provider.", err)
		return
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok {
		refuse(http.StatusUnauthorized, "Single sign-on: the provider sent no ID token.", nil)
		return
	}
	idt, err := p.Verifier(&oidc.Config{ClientID: u.oidc.cfg.ClientID}).Verify(ctx, raw)
	if err != nil {
		refuse(http.StatusUnauthorized, "Single sign-on: the ID token did not verify.", err)
		return
	}
	if idt.Nonce != parts[1] {
		refuse(http.StatusUnauthorized, "Single sign-on: the ID token's nonce does not match this login.", nil)
		return
	}
	claims := map[string]any{}
	if err := idt.Claims(&claims); err != nil {
		refuse(http.StatusUnauthorized, "Single sign-on: the ID token's claims are malformed.", err)
		return
	}
	name := u.oidc.userName(claims, idt.Subject)
	if err := auth.ValidateUserName(name); err != nil {
		refuse(http.StatusUnauthorized, "Single sign-on: "+err.Error(), nil)
		return
	}
	groups := stringList(claims[u.oidc.cfg.GroupsClaim])
	role := u.oidc.role(groups)
	if role == "" {
		refuse(http.StatusForbidden, fmt.Sprintf("Single sign-on: %s is in no group that gives a role here (groups: %s).", name, strings.Join(groups, ", ")), nil)
		return
	}
	now := u.cfg.Now().UTC()
	if err := u.cfg.Users.SSOLogin(r.Context(), name, role, now); errors.Is(err, auth.ErrLocalUser) {
		refuse(http.StatusConflict, fmt.Sprintf("Single sign-on: %s is a local user's name here; log in with the password, or ask an admin to remove the local user.", name), err)
		return
	} else if err != nil {
		u.fail(w, r, nil, err)
		return
	}
	if err := u.startSession(r.Context(), w, auth.User{Name: name, Role: role, Source: auth.SourceOIDC}); err != nil {
		u.fail(w, r, nil, err)
		return
	}
	next, _ := url.QueryUnescape(parts[3])
	http.Redirect(w, r, safeNext(next), http.StatusSeeOther)
}

func (o *oidcClient) userName(claims map[string]any, sub string) string {
	for _, k := range []string{o.cfg.UserClaim, "preferred_username", "email"} {
		if s, ok := claims[k].(string); ok && k != "" && s != "" {
			return s
		}
	}
	return sub
}

func stringList(v any) []string {
	switch x := v.(type) {
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case string:
		return strings.Fields(x)
	}
	return nil
}
