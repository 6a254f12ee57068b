package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/internal/table"
	"github.com/patchbay/patchbay/store"

	"github.com/patchbay/patchbay/auth"
)

func newAdminCmd(e *env) *cobra.Command {
	admin := &cobra.Command{Use: "admin", Short: "Administer the server's database: credentials"}
	token := &cobra.Command{Use: "token", Short: "Create, list and revoke API and enrollment tokens"}
	var (
		role, name string
		ttl        time.Duration
		uses       int
		enrollment bool
	)
	create := &cobra.Command{
		Use:   "create --role ROLE",
		Short: "Create a token and print its secret (shown once; only its hash is stored)",
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := auth.ParseRole(role)
			if err != nil {
				return fmt.Errorf("--role: %w", err)
			}
			kind := auth.KindAPI
			switch {
			case enrollment:
				kind, r = auth.KindEnrollment, auth.Agent
			case r == auth.Agent:
				return fmt.Errorf("--role agent: agent credentials come from enrollment; use --enrollment")
			}
			if uses == 0 || uses < -1 {
				return fmt.Errorf("--uses %d: want a positive number, or -1 for unlimited", uses)
			}
			return e.withDB(cmd, func(ctx context.Context, db *store.DB) error {
				secret, id, hash, err := auth.NewSecret()
				if err != nil {
					return err
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
					return err
				}
				if _, err := db.Audit.Append(ctx, actor(), "token.create", "token/"+id, t); err != nil {
					return err
				}
				fmt.Fprintln(e.stdout, secret)
				fmt.Fprintf(e.stderr, "created %s token %s (role %s); the secret above is not stored and will not be shown again\n", kind, id, r)
				return nil
			})
		},
	}
	create.Flags().StringVar(&role, "role", "viewer", "admin, operator or viewer")
	create.Flags().StringVar(&name, "name", "", "what the token is for")
	create.Flags().DurationVar(&ttl, "ttl", 0, "expire after this long (0: never; enrollment tokens default to 24h)")
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
			return e.withDB(cmd, func(ctx context.Context, db *store.DB) error {
				ts, err := db.Tokens.List(ctx)
				if err != nil {
					return err
				}
				if listOutput != "table" {
					return printData(e.stdout, listOutput, map[string]any{"tokens": ts})
				}
				tb := table.New(table.Column{Name: "ID"}, table.Column{Name: "KIND"}, table.Column{Name: "ROLE"}, table.Column{Name: "NAME", Shrink: 2, Min: 10},
					table.Column{Name: "CREATED"}, table.Column{Name: "EXPIRES"}, right("USES LEFT"), table.Column{Name: "STATE", Shrink: 1, Min: 10})
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
					tb.Row(t.ID, string(t.Kind), string(t.Role), t.Name, t.Created.Format(time.RFC3339), exp, left, state)
				}
				return e.writeTable(tb, wide)
			})
		},
	}

	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token; it is refused from its next use on",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.withDB(cmd, func(ctx context.Context, db *store.DB) error {
				if err := db.Tokens.Revoke(ctx, args[0]); err != nil {
					return err
				}
				_, err := db.Audit.Append(ctx, actor(), "token.revoke", "token/"+args[0], map[string]string{"id": args[0]})
				return err
			})
		},
	}
	wideFlag(list.Flags(), &wide)
	outputFlag(list.Flags(), &listOutput, dataFormats)
	token.AddCommand(create, list, revoke)
	admin.AddCommand(token)
	return admin
}
