// Package cli is the patchbay command line: cobra commands that wire the
// domain packages to the embedded store and the terminal. Run is the whole
// program, so tests drive it in-process.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/buildinfo"
	"github.com/patchbay/patchbay/store"
)

// Version is this binary's short identification (the version and the
// abbreviated VCS revision), for user agents and one-line banners; package
// buildinfo says how -ldflags sets it.
var Version = buildinfo.Get().Short()

// Exit codes.
const (
	ExitOK       = 0
	ExitFindings = 1 // --fail-on threshold reached; diff found differences
	ExitError    = 2
)

// ErrThreshold is returned when findings at or above --fail-on exist.
var ErrThreshold = errors.New("findings at or above the --fail-on priority")

// ErrDiffers is returned by diff when applying would change something: exit
// 1 without a message, the differences being the output.
var ErrDiffers = errors.New("differences found")

// env holds what every command shares. One config struct; precedence is
// flag > environment > default.
type env struct {
	stdout, stderr io.Writer
	dataDir        string
	dsn            string // --db
	// dataDirNamed: --data-dir or PATCHBAY_DATA_DIR was given (not the
	// default).
	dataDirNamed bool
	// local: --local, act on the local database even with a server
	// configured (admin token, audit, feeds).
	local      bool
	log        *slog.Logger
	isTerminal func(w io.Writer) bool
	// termWidth is the width of the terminal w is, or 0 when it is none:
	// tables are fitted to it.
	termWidth func(w io.Writer) int
}

// Run runs patchbay with args (without the program name) and returns the
// exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return (&env{stdout: stdout, stderr: stderr, isTerminal: isTerminal, termWidth: terminalWidth}).run(ctx, args)
}

// run runs patchbay with args in e (tests give it their own terminal).
func (e *env) run(ctx context.Context, args []string) int {
	stdout, stderr := e.stdout, e.stderr
	e.log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	root := newRoot(e)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrDiffers):
		return ExitFindings
	case errors.Is(err, ErrThreshold):
		fmt.Fprintln(stderr, "patchbay:", err)
		return ExitFindings
	default:
		fmt.Fprintln(stderr, "patchbay:", explain(cmd, err))
		return ExitError
	}
}

func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:           "patchbay",
		Short:         "Patch management: inventory, advisories, priorities and patches for a fleet",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       buildinfo.Get().String(),
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			e.dataDirNamed = e.dataDir != ""
			if e.dataDir == "" {
				e.dataDir = defaultDataDir()
			}
			return nil
		},
	}
	root.PersistentFlags().StringVar(&e.dataDir, "data-dir", os.Getenv("PATCHBAY_DATA_DIR"),
		"directory of the embedded database and caches (env PATCHBAY_DATA_DIR; default $XDG_DATA_HOME/patchbay)")
	root.PersistentFlags().BoolVar(&e.local, "local", false,
		"admin token, audit and feeds: act on the local database (--data-dir, --db) even when a server is configured")
	root.PersistentFlags().StringVar(&e.dsn, "db", os.Getenv("PATCHBAY_DB"),
		"database: postgres://… for PostgreSQL, or a SQLite file (env PATCHBAY_DB; default patchbay.db in the data dir)")
	root.AddCommand(newScanCmd(e), newPatchesCmd(e), newFeedsCmd(e), newAuditCmd(e), newAdminCmd(e),
		newServerCmd(e), newAgentCmd(e), newQuickstartCmd(e), newDevCmd(e), newUsersCmd(e))
	root.AddCommand(newBackupCmd(e))
	root.AddCommand(newClientCmds(e)...)
	root.AddCommand(newPolicyCmds(e)...)
	root.AddCommand(newRolloutCmds(e)...)
	root.AddCommand(newSchedulesCmd(e))
	root.AddCommand(newKPICmd(e), newReportCmd(e))
	root.AddCommand(newScorecardCmds(e)...)
	root.AddCommand(newVersionCmd(e))
	root.AddCommand(newInitCmd(e))
	root.AddCommand(newFixCmd(e))
	root.SetVersionTemplate("patchbay {{.Version}}\n")
	strictGroups(root)
	completions(root)
	return root
}

// strictGroups makes every command that only groups others (audit, hosts,
// plan …) refuse an argument that is not one of its subcommands: cobra
// checks that at the top level only, and below it prints the help and
// exits 0, so a cron running `patchbay audit verfy` would pass without
// verifying anything. Without arguments a group prints its help.
//
// A command that takes no arguments and does not say so (Args nil) gets
// cobra.NoArgs: `patchbay audit verify extra` is refused, not ignored.
func strictGroups(c *cobra.Command) {
	for _, sub := range c.Commands() {
		strictGroups(sub)
	}
	if c.Runnable() && c.Args == nil && c.HasParent() {
		c.Args = cobra.NoArgs
	}
	if c.Runnable() && !c.HasSubCommands() && c.Args != nil {
		// "accepts 1 arg(s), received 0" says what is wrong, not what
		// to write: add the usage line.
		check := c.Args
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := check(cmd, args); err != nil {
				return fmt.Errorf("%w\nusage: %s", err, cmd.UseLine())
			}
			return nil
		}
	}
	if !c.HasSubCommands() || c.Runnable() || !c.HasParent() {
		return
	}
	c.SuggestionsMinimumDistance = 2
	c.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		return unknownCommand(cmd, args[0])
	}
	c.RunE = func(cmd *cobra.Command, args []string) error { return cmd.Help() }
}

// unknownCommand is cobra's own top-level message, with its suggestions.
func unknownCommand(cmd *cobra.Command, arg string) error {
	msg := fmt.Sprintf("unknown command %q for %q", arg, cmd.CommandPath())
	if s := cmd.SuggestionsFor(arg); len(s) > 0 {
		msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
	}
	var names []string
	for _, sub := range cmd.Commands() {
		if sub.IsAvailableCommand() {
			names = append(names, sub.Name())
		}
	}
	return fmt.Errorf("%s\n\n%s has: %s (see %s --help)", msg, cmd.CommandPath(), strings.Join(names, ", "), cmd.CommandPath())
}

func newVersionCmd(e *env) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, the VCS revision and when it was built",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			b := buildinfo.Get()
			switch output {
			case "json":
				return printJSON(e.stdout, b)
			case "", "text", "table":
				_, err := fmt.Fprintf(e.stdout, "patchbay %s\n", b)
				return err
			}
			return fmt.Errorf("-o %q: want text or json", output)
		},
	}
	outputFlag(cmd.Flags(), &output, []string{"text", "json"})
	return cmd
}

// defaultDataDir is $XDG_DATA_HOME/patchbay, or ~/.local/share/patchbay.
func defaultDataDir() string {
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "patchbay")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "patchbay")
	}
	return ".patchbay"
}

// openDB opens the database: --db (PostgreSQL, or a SQLite file), or the
// embedded one in the data dir, creating both. Only the commands that
// build a database (server, quickstart, feeds import and sync) use it;
// the others use openExistingDB.
func (e *env) openDB(ctx context.Context) (*store.DB, error) {
	if e.dsn != "" {
		return store.Open(ctx, e.dsn)
	}
	if err := privateDataDir(e.dataDir, e.log); err != nil {
		return nil, err
	}
	return store.Open(ctx, filepath.Join(e.dataDir, "patchbay.db"))
}

// withDB runs fn with the embedded database open, and closes it.
func (e *env) withDB(cmd *cobra.Command, fn func(ctx context.Context, db *store.DB) error) error {
	ctx := cmd.Context()
	db, err := e.openDB(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	return fn(ctx, db)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
