package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/internal/table"
	"github.com/patchbay/patchbay/store"
)

// newUsersCmd manages the people who log in to the web UI, in the local
// database (--data-dir, --db): the server reads them from there.
func newUsersCmd(e *env) *cobra.Command {
	users := &cobra.Command{
		Use:   "users",
		Short: "Manage the people who log in to the web UI (in the local database: --data-dir, --db)",
		Long: `users adds, lists and removes the people who log in to the web UI with
a password, in the database the server uses (--data-dir, --db; a server may
be running on it). Passwords are hashed with argon2id. People who log in by
single sign-on (--oidc-issuer on the server) are listed too; their role is
the one their groups gave at their last login.`,
	}
	var role string
	var pwStdin bool
	add := &cobra.Command{
		Use:   "add NAME --role ROLE",
		Short: "Add a local user; the password is asked for (or read from stdin's first line with --password-stdin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := auth.ValidateUserName(name); err != nil {
				return err
			}
			r, err := auth.PersonRole(role)
			if err != nil {
				return fmt.Errorf("--role: %w", err)
			}
			pw, err := readPassword(cmd, e, pwStdin)
			if err != nil {
				return err
			}
			hash, err := auth.HashPassword(pw)
			if err != nil {
				return err
			}
			return e.withDB(cmd, func(ctx context.Context, db *store.DB) error {
				u := auth.User{Name: name, Role: r, Source: auth.SourceLocal, Created: time.Now().UTC()}
				if err := db.Users.Add(ctx, u, hash); err != nil {
					return err
				}
				if _, err := db.Audit.Append(ctx, actor(), "user.add", "user/"+name, map[string]any{"role": r}); err != nil {
					return err
				}
				fmt.Fprintf(e.stderr, "added user %s (role %s)\n", name, r)
				return nil
			})
		},
	}
	add.Flags().StringVar(&role, "role", "viewer", "admin, operator or viewer")
	add.Flags().BoolVar(&pwStdin, "password-stdin", false, "read the password from the first line of stdin")

	passwd := &cobra.Command{
		Use:   "passwd NAME",
		Short: "Set a local user's password (its sessions end)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, err := readPassword(cmd, e, pwStdin)
			if err != nil {
				return err
			}
			hash, err := auth.HashPassword(pw)
			if err != nil {
				return err
			}
			return e.withDB(cmd, func(ctx context.Context, db *store.DB) error {
				if err := db.Users.SetPassword(ctx, args[0], hash); err != nil {
					return err
				}
				_, err := db.Audit.Append(ctx, actor(), "user.passwd", "user/"+args[0], map[string]any{})
				return err
			})
		},
	}
	passwd.Flags().BoolVar(&pwStdin, "password-stdin", false, "read the password from the first line of stdin")

	remove := &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a user and end its sessions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.withDB(cmd, func(ctx context.Context, db *store.DB) error {
				if err := db.Users.Remove(ctx, args[0]); err != nil {
					return err
				}
				if _, err := db.Audit.Append(ctx, actor(), "user.remove", "user/"+args[0], map[string]any{}); err != nil {
					return err
				}
				fmt.Fprintf(e.stderr, "removed user %s\n", args[0])
				return nil
			})
		},
	}

	var listOutput string
	var wide bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the users",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(listOutput, dataFormats); err != nil {
				return err
			}
			return e.withDB(cmd, func(ctx context.Context, db *store.DB) error {
				us, err := db.Users.List(ctx)
				if err != nil {
					return err
				}
				if us == nil {
					us = []auth.User{}
				}
				if listOutput != "table" {
					return printData(e.stdout, listOutput, map[string]any{"users": us})
				}
				tb := table.New(table.Column{Name: "NAME", Shrink: 1, Min: 10}, table.Column{Name: "ROLE"}, table.Column{Name: "SOURCE"}, table.Column{Name: "CREATED", Drop: 1})
				for _, u := range us {
					tb.Row(u.Name, string(u.Role), u.Source, u.Created.Format(time.RFC3339))
				}
				return e.writeTable(tb, wide)
			})
		},
	}
	outputFlag(list.Flags(), &listOutput, dataFormats)
	wideFlag(list.Flags(), &wide)
	users.AddCommand(add, passwd, list, remove)
	return users
}

// readPassword reads a new password: from stdin's first line with
// --password-stdin, else asked twice on the terminal without echo.
func readPassword(cmd *cobra.Command, e *env, fromStdin bool) (string, error) {
	in := cmd.InOrStdin()
	if fromStdin {
		line, err := bufio.NewReader(in).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read password from stdin: %w", err)
		}
		pw := strings.TrimRight(line, "\r\n")
		if pw == "" {
			return "", errors.New("--password-stdin: stdin is empty; give the password on its first line")
		}
		return pw, nil
	}
	f, ok := in.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", errors.New("no terminal to ask the password on: give it on stdin with --password-stdin")
	}
	fmt.Fprint(e.stderr, "password: ")
	a, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(e.stderr)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	fmt.Fprint(e.stderr, "again: ")
	b, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(e.stderr)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	if string(a) != string(b) {
		return "", errors.New("the two passwords differ")
	}
	return string(a), nil
}
