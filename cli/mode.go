package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/store"
)

// The commands that can act on the server or on a database of their own
// (admin token, audit, feeds status) follow one rule:
//
//   - --local: the local database (--db, or patchbay.db in --data-dir);
//   - otherwise, with a server configured (--server or PATCHBAY_SERVER):
//     the server, through its API;
//   - otherwise: the local database, which must exist; when none was
//     named (--data-dir, --db or their environment variables) and the
//     default data dir holds none, the error names both ways.
//
// A server configured wins over a data dir because the data dir is also
// set for other reasons (the agent's state, a shell profile), while a
// server is configured only to be talked to. Which one is used is said on
// standard error. Only the commands that build a local database (feeds
// import and sync) create one.

// errNoTarget is the error of a command with no server configured, no
// database named, and none in the default data dir.
func errNoTarget(path string) error {
	return fmt.Errorf("no server configured and no local database at %s (nothing was created): set %s (or --server URL) to act on the server, "+
		"or give --data-dir DIR or --db DSN of a local database", path, envServer)
}

// modeFlags are the flags of a command that acts on the server or on the
// local database.
type modeFlags struct {
	clientConfig
}

// bind registers --server, --ca and --pin on cmd and its subcommands
// (--local is the root's: `patchbay --local admin token list` parses).
func (m *modeFlags) bind(cmd *cobra.Command) {
	m.clientConfig.bind(cmd.PersistentFlags(), clientFlags{trust: true})
}

// target is where one command acts: a server's API, or a local database.
type target struct {
	api *api.Client // nil: local
	db  *store.DB
}

func (t *target) close() {
	if t.db != nil {
		t.db.Close()
	}
}

// useServer applies the rule: true for the server, false for the local
// database.
func (e *env) useServer(cmd *cobra.Command, m *modeFlags) (bool, error) {
	switch {
	case e.local:
		if cmd.Flags().Changed("server") {
			return false, errors.New("--local and --server: give one (--local acts on the local database, --server on the server)")
		}
		return false, nil
	case m.server != "":
		return true, nil
	default:
		return false, nil
	}
}

// open resolves where cmd acts and opens it: the server's API client (with
// PATCHBAY_TOKEN), or the local database, which must exist. It says on
// standard error which one.
func (e *env) open(cmd *cobra.Command, m *modeFlags) (*target, error) {
	srv, err := e.useServer(cmd, m)
	if err != nil {
		return nil, err
	}
	if srv {
		c, err := m.apiClient()
		if err != nil {
			return nil, err
		}
		note := ""
		if cmd.Flags().Changed("data-dir") || cmd.Flags().Changed("db") {
			note = " (--data-dir and --db are not used: add --local to act on the local database)"
		}
		fmt.Fprintf(e.stderr, "server %s%s\n", m.server, note)
		return &target{api: c}, nil
	}
	db, err := e.openExistingDB(cmd.Context())
	var missing *errNoLocalDB
	if errors.As(err, &missing) && !e.local && !e.dataDirNamed && e.dsn == "" {
		return nil, errNoTarget(missing.path)
	}
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(e.stderr, "local database %s\n", e.dbName())
	return &target{db: db}, nil
}

// dbName names the local database for messages, without a password.
func (e *env) dbName() string {
	if e.dsn == "" {
		return filepath.Join(e.dataDir, "patchbay.db")
	}
	if store.IsPostgres(e.dsn) {
		if i := strings.Index(e.dsn, "@"); i > 0 {
			if j := strings.Index(e.dsn, "://"); j > 0 && j < i {
				return e.dsn[:j+3] + "…" + e.dsn[i:]
			}
		}
		return e.dsn
	}
	return strings.TrimPrefix(e.dsn, "sqlite:")
}

// errNoLocalDB says that the local database a command reads does not
// exist.
type errNoLocalDB struct{ path string }

func (e *errNoLocalDB) Error() string {
	return fmt.Sprintf("no local database at %s (nothing was created): give --data-dir DIR or --db of an existing one, "+
		"or --server URL (or %s) to act on the server", e.path, envServer)
}

// openExistingDB opens the local database without creating it or its
// data dir: a SQLite file that does not exist is an *errNoLocalDB.
// (A PostgreSQL database is opened as named.)
func (e *env) openExistingDB(ctx context.Context) (*store.DB, error) {
	if e.dsn != "" && store.IsPostgres(e.dsn) {
		return store.Open(ctx, e.dsn)
	}
	path := e.dbName()
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, &errNoLocalDB{path: path}
	} else if err != nil {
		return nil, fmt.Errorf("local database: %w", err)
	}
	if e.dsn != "" {
		return store.Open(ctx, e.dsn)
	}
	return store.Open(ctx, path)
}
