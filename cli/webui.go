package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/patchbay/patchbay/server"
	"github.com/patchbay/patchbay/store"
	"github.com/patchbay/patchbay/web"
)

// uiOpts are the web UI's server flags: sessions and single sign-on.
type uiOpts struct {
	idle, ttl       time.Duration
	oidcIssuer      string
	oidcClientID    string
	oidcSecretFile  string
	oidcRedirect    string
	oidcGroupsClaim string
	oidcUserClaim   string
	oidcRoles       []string
	oidcName        string
}

func (o *uiOpts) flags(f *pflag.FlagSet) {
	spanVar(f, &o.idle, "ui-idle-timeout", 30*time.Minute, "web UI: a session unused this long ends")
	spanVar(f, &o.ttl, "ui-session-ttl", 12*time.Hour, "web UI: a session ends this long after login, used or not")
	f.StringVar(&o.oidcIssuer, "oidc-issuer", "", "web UI single sign-on: the OpenID Connect issuer URL (https://login.example.org/realms/ops)")
	f.StringVar(&o.oidcClientID, "oidc-client-id", "", "web UI single sign-on: this server's client id at the issuer")
	f.StringVar(&o.oidcSecretFile, "oidc-client-secret-file", "", "web UI single sign-on: file holding the client secret (or env PATCHBAY_OIDC_CLIENT_SECRET)")
	f.StringVar(&o.oidcRedirect, "oidc-redirect-url", "", "web UI single sign-on: this server's callback as registered at the issuer (https://HOST/auth/oidc/callback)")
	f.StringVar(&o.oidcGroupsClaim, "oidc-groups-claim", "groups", "web UI single sign-on: the ID token claim listing the person's groups")
	f.StringVar(&o.oidcUserClaim, "oidc-user-claim", "preferred_username", "web UI single sign-on: the ID token claim naming the person (then email, then sub)")
	f.StringSliceVar(&o.oidcRoles, "oidc-role", nil, "web UI single sign-on: GROUP=ROLE, a group that gives a role (repeatable; the highest wins; no matching group: refused)")
	f.StringVar(&o.oidcName, "oidc-name", "single sign-on", "web UI single sign-on: the provider's name on the login button")
}

// handler serves the web UI at / beside the API.
func (o *uiOpts) handler(ctx context.Context, srv *server.Server, db *store.DB, log *slog.Logger, now func() time.Time) (http.Handler, error) {
	cfg := web.Config{API: srv.Handler(), Users: db.Users, Log: log, Now: now, IdleTimeout: o.idle, SessionTTL: o.ttl}
	if o.oidcIssuer != "" {
		secret := os.Getenv("PATCHBAY_OIDC_CLIENT_SECRET")
		if o.oidcSecretFile != "" {
			b, err := os.ReadFile(o.oidcSecretFile)
			if err != nil {
				return nil, fmt.Errorf("--oidc-client-secret-file: %w", err)
			}
			secret = strings.TrimSpace(string(b))
		}
		roles, err := web.ParseRoleMap(o.oidcRoles)
		if err != nil {
			return nil, fmt.Errorf("--oidc-role %w", err)
		}
		cfg.OIDC = &web.OIDCConfig{Issuer: o.oidcIssuer, ClientID: o.oidcClientID, ClientSecret: secret, RedirectURL: o.oidcRedirect,
			GroupsClaim: o.oidcGroupsClaim, UserClaim: o.oidcUserClaim, Roles: roles, DisplayName: o.oidcName}
	} else if o.oidcClientID != "" || len(o.oidcRoles) > 0 || o.oidcRedirect != "" {
		return nil, fmt.Errorf("--oidc-client-id, --oidc-role and --oidc-redirect-url need --oidc-issuer")
	}
	ui, err := web.New(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("web UI: %w", err)
	}
	return ui.Handler(), nil
}
