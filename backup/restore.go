package backup

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/patchbay/patchbay/rollout"
	"github.com/patchbay/patchbay/store"
)

// Checked is an archive extracted into Dir and verified.
type Checked struct {
	Manifest *Manifest
	Dir      string
	// AuditEntries is the length of the verified chain.
	AuditEntries int
}

// Close removes the extracted files.
func (c *Checked) Close() error { return os.RemoveAll(c.Dir) }

// Check extracts an archive into a new directory under tmp and verifies
// it: every part against the manifest, the schema version known to this
// binary, the audit chain against the head recorded (and its signature
// with the archive's audit key), and for SQLite the database's own chain
// too. Nothing outside the new directory is written; it is removed on
// error.
func Check(ctx context.Context, r io.Reader, tmp string, identities []age.Identity) (*Checked, error) {
	return check(ctx, r, tmp, identities, false)
}

// VerifyStream is Check of the unencrypted stream Options.Tee received
// (of an encrypted archive or not): what a scheduled backup verifies as
// it writes, without the identity that decrypts the file.
func VerifyStream(ctx context.Context, r io.Reader, tmp string) (*Checked, error) {
	return check(ctx, r, tmp, nil, true)
}

func check(ctx context.Context, r io.Reader, tmp string, identities []age.Identity, plainOfEncrypted bool) (*Checked, error) {
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(tmp, "patchbay-restore-")
	if err != nil {
		return nil, err
	}
	c := &Checked{Dir: dir}
	fail := func(err error) (*Checked, error) {
		c.Close()
		return nil, err
	}
	m, err := extract(r, filepath.Join(dir, "archive"), identities, plainOfEncrypted)
	if err != nil {
		return fail(err)
	}
	c.Manifest = m
	if m.Backend != "sqlite" && m.Backend != "postgres" {
		return fail(corrupt(ManifestName, fmt.Sprintf("backend %q: want sqlite or postgres", m.Backend), nil))
	}
	if known := store.KnownSchema(m.Backend); m.Schema > known {
		return fail(fmt.Errorf("backup archive: its database schema is version %d, newer than this patchbay knows (%d): restore it with patchbay %s or later", m.Schema, known, m.Patchbay))
	}
	var pub ed25519.PublicKey
	if b, err := os.ReadFile(filepath.Join(dir, "archive", "keys", "audit-signing.key")); err == nil && len(b) == ed25519.SeedSize {
		pub = ed25519.NewKeyFromSeed(b).Public().(ed25519.PublicKey)
	}
	entries, err := ReadAudit(filepath.Join(dir, "archive"))
	if err != nil {
		return fail(err)
	}
	if err := CheckAudit(entries, m, pub, AuditName); err != nil {
		return fail(err)
	}
	c.AuditEntries = len(entries)
	if m.Backend == "sqlite" {
		if err := c.checkSQLite(ctx); err != nil {
			return fail(err)
		}
	} else if err := c.checkDump(ctx); err != nil {
		return fail(err)
	}
	return c, nil
}

// checkDump reads the dump's table of contents with pg_restore --list
// (when installed): a dump pg_restore cannot read is refused.
func (c *Checked) checkDump(ctx context.Context) error {
	pgRestore, err := exec.LookPath("pg_restore")
	if err != nil {
		return nil // checked against its SHA-256 only; restore needs it
	}
	out, err := exec.CommandContext(ctx, pgRestore, "--list", c.path(PostgresName)).CombinedOutput()
	if err != nil {
		return corrupt(PostgresName, "pg_restore cannot read the dump", fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out))))
	}
	return nil
}

// checkSQLite reads the database as it is (no migration, nothing
// written): SQLite's quick check, its schema version against the
// manifest's, its own audit chain against the manifest's head.
func (c *Checked) checkSQLite(ctx context.Context) error {
	v, entries, err := store.ReadSQLiteSnapshot(ctx, c.path(SQLiteName))
	if err != nil {
		return corrupt(SQLiteName, "not a sound SQLite database", err)
	}
	if v != c.Manifest.Schema {
		return corrupt(SQLiteName, fmt.Sprintf("schema version %d, the manifest says %d", v, c.Manifest.Schema), nil)
	}
	return CheckAudit(entries, c.Manifest, nil, SQLiteName)
}

func (c *Checked) path(part string) string {
	return filepath.Join(c.Dir, "archive", filepath.FromSlash(part))
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// RestoreOptions say where a checked archive goes.
type RestoreOptions struct {
	// DataDir receives the database (SQLite) and the keys, certificate
	// and checkpoints (both backends).
	DataDir string
	// DSN names the PostgreSQL database a PostgreSQL archive goes to.
	DSN string
	// Force replaces a data dir or database that holds data.
	Force bool
	Now   func() time.Time
}

// Restored says what a restore did.
type Restored struct {
	Manifest   *Manifest
	SchemaFrom int64
	SchemaTo   int64
	// Paused are the rollouts paused because they were active.
	Paused []string
}

// ErrNotEmpty is returned for a restore target that holds data without
// Force.
var ErrNotEmpty = errors.New("the restore target is not empty")

// Restore writes a checked archive to its target: a SQLite archive into
// o.DataDir (written beside it, renamed into place), a PostgreSQL one into
// o.DSN in one transaction with its files into o.DataDir. The database is
// migrated when its schema is older; rollouts that were active are
// paused with an audit entry, and the restore itself is audited.
func Restore(ctx context.Context, c *Checked, o RestoreOptions) (*Restored, error) {
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	m := c.Manifest
	if o.DataDir == "" {
		return nil, errors.New("restore: no data dir")
	}
	if m.Backend == "postgres" && o.DSN == "" {
		return nil, errors.New("restore: the archive holds a PostgreSQL database: give the target with --db postgres://…")
	}
	if m.Backend == "sqlite" && o.DSN != "" {
		return nil, errors.New("restore: the archive holds a SQLite database: restore it into a data dir (--data-dir), not --db")
	}
	if err := targetEmpty(o.DataDir, o.Force); err != nil {
		return nil, err
	}
	if err := notServed(ctx, o.DataDir); err != nil {
		return nil, err
	}
	if m.Backend == "postgres" {
		n, err := store.PostgresTables(ctx, o.DSN)
		if err != nil {
			return nil, fmt.Errorf("restore: %w", err)
		}
		if n > 0 && !o.Force {
			return nil, fmt.Errorf("%w: the database holds %d tables (--force replaces them)", ErrNotEmpty, n)
		}
	}
	// The new data dir is built beside the target, then renamed.
	parent := filepath.Dir(filepath.Clean(o.DataDir))
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return nil, err
	}
	stage, err := os.MkdirTemp(parent, "."+filepath.Base(o.DataDir)+".restore-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(stage)
	if err := os.Chmod(stage, 0o700); err != nil {
		return nil, err
	}
	for _, p := range m.Parts {
		var dst string
		switch {
		case strings.HasPrefix(p.Name, "keys/"), strings.HasPrefix(p.Name, "certs/"):
			dst = filepath.Join(stage, path2base(p.Name))
		case strings.HasPrefix(p.Name, "checkpoints/"):
			dst = filepath.Join(stage, "checkpoints", path2base(p.Name))
		case p.Name == SQLiteName:
			dst = filepath.Join(stage, "patchbay.db")
		default:
			continue
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return nil, err
		}
		if err := copyFile(c.path(p.Name), dst); err != nil {
			return nil, fmt.Errorf("restore: %w", err)
		}
	}
	res := &Restored{Manifest: m, SchemaFrom: m.Schema}
	dsn := filepath.Join(stage, "patchbay.db")
	if m.Backend == "postgres" {
		if err := loadPostgres(ctx, c.path(PostgresName), o.DSN, o.Force); err != nil {
			return nil, err
		}
		dsn = o.DSN
	}
	db, err := store.Open(ctx, dsn) // migrates an older schema
	if err != nil {
		return nil, fmt.Errorf("restore: open the restored database: %w", err)
	}
	if res.SchemaTo, err = db.SchemaVersion(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if res.Paused, err = pauseActive(ctx, db, m, now().UTC()); err != nil {
		db.Close()
		return nil, fmt.Errorf("restore: %w", err)
	}
	change := map[string]any{"created": m.Created, "patchbay": m.Patchbay, "backend": m.Backend, "schema_from": res.SchemaFrom, "schema_to": res.SchemaTo,
		"audit_head": m.AuditHead.Seq, "audit_head_hash": m.AuditHead.Hash, "paused": res.Paused, "keys_included": m.KeysIncluded}
	if _, err := db.Audit.Append(ctx, "backup", "backup.restore", "backup/"+m.Created.Format(time.RFC3339), change); err != nil {
		db.Close()
		return nil, fmt.Errorf("restore: %w", err)
	}
	if err := db.Close(); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	for _, sfx := range []string{"-wal", "-shm"} {
		os.Remove(dsn + sfx)
	}
	if err := swapIn(stage, o.DataDir); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	return res, nil
}

func path2base(name string) string { return filepath.Base(filepath.FromSlash(name)) }

// targetEmpty refuses a data dir that holds anything, unless force.
func targetEmpty(dir string, force bool) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if len(ents) > 0 && !force {
		return fmt.Errorf("%w: %s holds %d entries such as %s (--force replaces them)", ErrNotEmpty, dir, len(ents), ents[0].Name())
	}
	return nil
}

// notServed refuses a data dir whose database a server is serving (its
// lock is held): the restore would be renamed under it.
func notServed(ctx context.Context, dir string) error {
	db := filepath.Join(dir, "patchbay.db")
	if _, err := os.Stat(db); err != nil {
		return nil
	}
	d, err := store.Open(ctx, db)
	if err != nil {
		return fmt.Errorf("restore: the database in %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.LockForServer(); err != nil {
		return fmt.Errorf("restore: stop the server first: %w", err)
	}
	return nil
}

// swapIn renames the staged data dir to dir; what was there is removed
// once the new one is in place.
func swapIn(stage, dir string) error {
	old := ""
	if _, err := os.Stat(dir); err == nil {
		old = stage + ".old"
		if err := os.Rename(dir, old); err != nil {
			return err
		}
	}
	if err := os.Rename(stage, dir); err != nil {
		if old != "" {
			os.Rename(old, dir)
		}
		return err
	}
	if old != "" {
		return os.RemoveAll(old)
	}
	return nil
}

// loadPostgres loads a pg_dump archive into dsn in one transaction
// (pg_restore's SQL through psql --single-transaction), dropping what the
// database holds first when force: a failure leaves it as it was.
func loadPostgres(ctx context.Context, dump, dsn string, force bool) error {
	pgRestore, err := exec.LookPath("pg_restore")
	if err != nil {
		return errors.New("restore: pg_restore is not installed (Debian: apt-get install postgresql-client)")
	}
	psql, err := exec.LookPath("psql")
	if err != nil {
		return errors.New("restore: psql is not installed (Debian: apt-get install postgresql-client)")
	}
	gen := exec.CommandContext(ctx, pgRestore, "--no-owner", "--no-privileges", "--file=-", dump)
	script, err := gen.StdoutPipe()
	if err != nil {
		return err
	}
	var genErr strings.Builder
	gen.Stderr = &genErr
	pre := "SET client_min_messages = warning;\n"
	if force {
		pre += "DROP SCHEMA IF EXISTS public CASCADE;\nCREATE SCHEMA public;\n"
	}
	load := exec.CommandContext(ctx, psql, "--no-psqlrc", "--quiet", "--single-transaction", "--set=ON_ERROR_STOP=1", "--dbname="+libpqDSN(dsn), "--file=-")
	load.Stdin = io.MultiReader(strings.NewReader(pre), script)
	var loadErr strings.Builder
	load.Stderr = &loadErr
	load.Stdout = io.Discard
	if err := gen.Start(); err != nil {
		return fmt.Errorf("restore: pg_restore: %w", err)
	}
	lerr := load.Run()
	gerr := gen.Wait()
	if gerr != nil {
		return fmt.Errorf("restore: pg_restore: %w: %s", gerr, strings.TrimSpace(genErr.String()))
	}
	if lerr != nil {
		return fmt.Errorf("restore: psql (nothing was loaded): %w: %s", lerr, strings.TrimSpace(loadErr.String()))
	}
	return nil
}

// pauseActive pauses every rollout that was running, baking or awaiting
// promotion when the backup was taken, with an audit entry saying why:
// the backup does not know the jobs run after it, and a person resumes
// once the agents have reported them.
func pauseActive(ctx context.Context, db *store.DB, m *Manifest, now time.Time) ([]string, error) {
	ids, err := db.Rollouts.Active(ctx)
	if err != nil {
		return nil, err
	}
	var paused []string
	for _, id := range ids {
		row, err := db.Rollouts.Plan(ctx, id, false)
		if err != nil {
			return nil, err
		}
		mc := row.Machine
		if mc == nil || mc.State == rollout.Paused {
			continue
		}
		from := mc.State
		if err := mc.Pause(); err != nil {
			continue
		}
		ev := rollout.Event{Actor: "backup", Action: "rollout.pause", Object: "plan/" + id, Change: map[string]any{"from": from,
			"why": fmt.Sprintf("restored from the backup of %s: jobs run after it are reconciled from the agents' journals and reports; resume once they have reported", m.Created.Format(time.RFC3339))}}
		if err := db.Rollouts.Update(ctx, row, now, ev); err != nil {
			return nil, err
		}
		paused = append(paused, id)
	}
	return paused, nil
}
