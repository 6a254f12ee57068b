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

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/store"
)

// Version is the patchbay version, set at build time with -ldflags.
var Version = "dev"

// Exit codes.
const (
	ExitOK       = 0
	ExitFindings = 1 // --fail-on threshold reached
	ExitError    = 2
)

// ErrThreshold is returned when findings at or above --fail-on exist.
var ErrThreshold = errors.New("findings at or above the --fail-on priority")

// env holds what every command shares. One config struct; precedence is
// flag > environment > default.
type env struct {
	stdout, stderr io.Writer
	dataDir        string
	dsn            string // --db
	log            *slog.Logger
	isTerminal     func(w io.Writer) bool
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
	err := root.ExecuteContext(ctx)
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrThreshold):
		fmt.Fprintln(stderr, "patchbay:", err)
		return ExitFindings
	default:
		fmt.Fprintln(stderr, "patchbay:", err)
		return ExitError
	}
}

func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:           "patchbay",
		Short:         "Patch management: inventory, advisories, priorities and patches for a fleet",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if e.dataDir == "" {
				e.dataDir = defaultDataDir()
			}
			return nil
		},
	}
	root.PersistentFlags().StringVar(&e.dataDir, "data-dir", os.Getenv("PATCHBAY_DATA_DIR"),
		"directory of the embedded database and caches (env PATCHBAY_DATA_DIR; default $XDG_DATA_HOME/patchbay)")
	root.PersistentFlags().StringVar(&e.dsn, "db", os.Getenv("PATCHBAY_DB"),
		"database: postgres://… for PostgreSQL, or a SQLite file (env PATCHBAY_DB; default patchbay.db in the data dir)")
	root.AddCommand(newScanCmd(e), newPatchesCmd(e), newFeedsCmd(e), newAuditCmd(e), newAdminCmd(e),
		newServerCmd(e), newAgentCmd(e), newQuickstartCmd(e), newDevCmd(e))
	root.AddCommand(newClientCmds(e)...)
	root.AddCommand(newPolicyCmds(e)...)
	root.AddCommand(newRolloutCmds(e)...)
	return root
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
// embedded one in the data dir, creating both.
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
