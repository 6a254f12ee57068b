package cli

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/internal/table"
	"github.com/patchbay/patchbay/store"
)

func newAdminCmd(e *env) *cobra.Command {
	admin := &cobra.Command{
		Use:   "admin",
		Short: "Administer credentials: on the server (--server, PATCHBAY_SERVER) or in the local database (--local)",
		Long: `admin acts on the server configured with --server or PATCHBAY_SERVER
(with an admin token in PATCHBAY_TOKEN), or, with --local or when no server
is configured, on the local database (--data-dir, --db) directly: the way to
make the first admin token of a server, or another when it is lost. The
local database must exist (a server has run on it); nothing is created.`,
	}
	var m modeFlags
	m.bind(admin)
	token := &cobra.Command{Use: "token", Short: "Create, list and revoke API and enrollment tokens"}
	var (
		role, name string
		ttl        time.Duration
		uses       int
		enrollment bool
		// createOutput: table prints the bare secret (for scripts: TOKEN=$(…)).
		createOutput string
	)
	create := &cobra.Command{
		Use:   "create --role ROLE",
		Short: "Create a token and print its secret (shown once; only its hash is stored)",
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := auth.ParseRole(role)
			if err != nil {
				return fmt.Errorf("--role: %w", err)
			}
			if err := checkOutput(createOutput, dataFormats); err != nil {
				return err
			}
			kind := auth.KindAPI
			switch {
			case enrollment && cmd.Flags().Changed("role"):
				return fmt.Errorf("--enrollment and --role %s: an enrollment token has no role (agents get theirs when they enroll); give one of the two", role)
			case enrollment:
				kind, r = auth.KindEnrollment, auth.Agent
			case r == auth.Agent:
				return fmt.Errorf("--role agent: agent credentials come from enrollment; use --enrollment")
			}
			if uses == 0 || uses < -1 {
				return fmt.Errorf("--uses %d: want a positive number, or -1 for unlimited", uses)
			}
			if ttl < 0 {
				return fmt.Errorf("--ttl %s: want 0 (never expires) or a positive duration", ttl)
			}
			tg, err := e.open(cmd, &m)
			if err != nil {
				return err
			}
			defer tg.close()
			ctx := cmd.Context()
			var t auth.Token
			var secret string
			if tg.api != nil {
				req := api.TokenRequest{Kind: kind, Name: name, TTLSeconds: int64(ttl / time.Second), Uses: uses}
				if kind == auth.KindAPI {
					req.Role = r
				}
				var resp api.TokenResponse
				if err := tg.api.Do(ctx, http.MethodPost, api.Prefix+"/tokens", req, &resp); err != nil {
					return fmt.Errorf("create token: %w", err)
				}
				t, secret = resp.Token, resp.Secret
			} else {
				if t, secret, err = createLocalToken(ctx, tg.db, kind, r, name, ttl, uses); err != nil {
					return err
				}
			}
			if createOutput != "table" {
				return printData(e.stdout, createOutput, map[string]any{"secret": secret, "token": t})
			}
			fmt.Fprintln(e.stdout, secret)
			fmt.Fprintf(e.stderr, "created %s token %s (role %s); the secret above is not stored and will not be shown again\n", t.Kind, t.ID, t.Role)
			return nil
		},
	}
	outputFlag(create.Flags(), &createOutput, dataFormats)
	create.Flags().StringVar(&role, "role", "viewer", "admin, operator or viewer")
	create.Flags().StringVar(&name, "name", "", "what the token is for")
	spanVar(create.Flags(), &ttl, "ttl", 0, "expire after this long (0: never; enrollment tokens default to 24h)")
	create.Flags().BoolVar(&enrollment, "enrollment", false, "an enrollment token, exchanged by agents for host credentials")
	create.Flags().IntVar(&uses, "uses", 1, "enrollments allowed (enrollment tokens; -1 for unlimited)")
	create.PreRunE = func(cmd *cobra.Command, args []string) error {
		if enrollment && !cmd.Flags().Changed("ttl") {
			ttl = 24 * time.Hour
		}
		return nil
	}

	var wide bool
	var listOutput string
	list := &cobra.Command{
		Use:   "list",
		Short: "List tokens (never their secrets)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(listOutput, dataFormats); err != nil {
				return err
			}
			tg, err := e.open(cmd, &m)
			if err != nil {
				return err
			}
			defer tg.close()
			var ts []auth.Token
			if tg.api != nil {
				var resp struct {
					Tokens []auth.Token `json:"tokens"`
				}
				if err := tg.api.Do(cmd.Context(), http.MethodGet, api.Prefix+"/tokens", nil, &resp); err != nil {
					return fmt.Errorf("list tokens: %w", err)
				}
				ts = resp.Tokens
			} else if ts, err = tg.db.Tokens.List(cmd.Context()); err != nil {
				return fmt.Errorf("list tokens: %w", err)
			}
			if listOutput != "table" {
				return printData(e.stdout, listOutput, map[string]any{"tokens": ts})
			}
			tb := table.New(table.Column{Name: "ID"}, table.Column{Name: "KIND"}, table.Column{Name: "ROLE"}, table.Column{Name: "NAME", Shrink: 2, Min: 10},
				table.Column{Name: "CREATED", Drop: 2}, table.Column{Name: "EXPIRES"}, table.Column{Name: "USES LEFT", Right: true, Drop: 1}, table.Column{Name: "STATE", Shrink: 1, Min: 10})
			now := time.Now()
			for _, t := range ts {
				exp, left, state := "never", "-", "active"
				if !t.Expires.IsZero() {
					exp = t.Expires.Format(time.RFC3339)
				}
				if t.Kind == auth.KindEnrollment {
					left = fmt.Sprint(t.UsesLeft)
					if t.UsesLeft < 0 {
						left = "unlimited"
					}
				}
				if err := t.Check(now); err != nil {
					state = err.Error()
				}
				name := t.Name
				if t.Kind == auth.KindHost && t.Subject != "" {
					name = strings.TrimSpace(name + " (host " + t.Subject + ")")
				}
				tb.Row(t.ID, string(t.Kind), string(t.Role), name, t.Created.Format(time.RFC3339), exp, left, state)
			}
			return e.writeTable(tb, wide)
		},
	}

	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token; it is refused from its next use on",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tg, err := e.open(cmd, &m)
			if err != nil {
				return err
			}
			defer tg.close()
			ctx, id := cmd.Context(), args[0]
			if tg.api != nil {
				if err := tg.api.Do(ctx, http.MethodDelete, api.Prefix+"/tokens/"+url.PathEscape(id), nil, nil); err != nil {
					return fmt.Errorf("revoke token %s: %w", id, err)
				}
			} else {
				if err := tg.db.Tokens.Revoke(ctx, id); err != nil {
					return err // the store names the token
				}
				if _, err := tg.db.Audit.Append(ctx, actor(), "token.revoke", "token/"+id, map[string]string{"id": id}); err != nil {
					return err
				}
			}
			fmt.Fprintf(e.stderr, "revoked token %s\n", id)
			return nil
		},
	}
	wideFlag(list.Flags(), &wide)
	outputFlag(list.Flags(), &listOutput, dataFormats)
	token.AddCommand(create, list, revoke)
	admin.AddCommand(token)
	return admin
}

// createLocalToken makes a token in a local database, audited.
func createLocalToken(ctx context.Context, db *store.DB, kind auth.Kind, r auth.Role, name string, ttl time.Duration, uses int) (auth.Token, string, error) {
	secret, id, hash, err := auth.NewSecret()
	if err != nil {
		return auth.Token{}, "", err
	}
	now := time.Now().UTC()
	t := auth.Token{ID: id, Kind: kind, Role: r, Name: name, Created: now, UsesLeft: -1}
	if ttl > 0 {
		t.Expires = now.Add(ttl)
	}
	if kind == auth.KindEnrollment {
		t.UsesLeft = uses
	}
	if err := db.Tokens.Create(ctx, t, hash); err != nil {
		return auth.Token{}, "", fmt.Errorf("create token: %w", err)
	}
	if _, err := db.Audit.Append(ctx, actor(), "token.create", "token/"+id, t); err != nil {
		return auth.Token{}, "", err
	}
	return t, secret, nil
}
