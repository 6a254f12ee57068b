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
	"sort"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/patchbay/patchbay/audit"
	"github.com/patchbay/patchbay/buildinfo"
	"github.com/patchbay/patchbay/store"
)

// Options say what Create backs up.
type Options struct {
	// DB is the live database (the server goes on writing to it).
	DB *store.DB
	// DSN names a PostgreSQL database for pg_dump (DB must be it).
	DSN string
	// DataDir holds the keys, the TLS certificate and checkpoints/.
	DataDir string
	// JobKey is the job-signing key file when it is not in DataDir.
	JobKey string
	// CheckpointDir holds the signed audit checkpoints (default
	// DataDir/checkpoints).
	CheckpointDir string
	// Recipients encrypt the archive (age).
	Recipients []age.Recipient
	// IncludeKeysPlaintext writes the keys into an unencrypted archive.
	IncludeKeysPlaintext bool
	// TempDir holds the database snapshot while it is written (default
	// DataDir/tmp).
	TempDir string
	Now     func() time.Time
	// Tee receives the archive's unencrypted (compressed) stream as it is
	// written: VerifyStream checks it while the encrypted file is written.
	Tee io.Writer
}

// Create writes an archive of the live database and the data dir to w and
// returns its manifest. Nothing stops the server: SQLite is copied with
// VACUUM INTO in one read transaction, PostgreSQL with pg_dump in one
// exported snapshot.
func Create(ctx context.Context, w io.Writer, o Options) (*Manifest, error) {
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	at := now().UTC()
	m := &Manifest{Format: Format, Backend: o.DB.Backend, Patchbay: buildinfo.Get().Version, Created: at, Encrypted: len(o.Recipients) > 0}
	if m.Patchbay == "" {
		m.Patchbay = "devel"
	}
	aw, err := newWriter(w, o.Recipients, at, o.Tee)
	if err != nil {
		return nil, err
	}
	// The data dir's files first: the checkpoints copied before the
	// snapshot name no entry the snapshot lacks.
	keys := o.keyPaths()
	var auditKey ed25519.PrivateKey
	includeKeys := m.Encrypted || o.IncludeKeysPlaintext
	for _, name := range sortedKeys(keys) {
		p := keys[name]
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
		if name == "audit-signing.key" && len(b) == ed25519.SeedSize {
			auditKey = ed25519.NewKeyFromSeed(b)
		}
		if !includeKeys {
			m.KeysLeftOut = append(m.KeysLeftOut, name)
			continue
		}
		if err := aw.addBytes("keys/"+name, b, true); err != nil {
			return nil, err
		}
		m.KeysIncluded = true
	}
	for _, name := range publicFiles {
		p := filepath.Join(o.DataDir, name)
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := aw.addFile("certs/"+name, p, false); err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
	}
	cpDir := o.CheckpointDir
	if cpDir == "" {
		cpDir = filepath.Join(o.DataDir, "checkpoints")
	}
	if ents, err := os.ReadDir(cpDir); err == nil {
		for _, de := range ents {
			if de.Type().IsRegular() {
				if err := aw.addFile("checkpoints/"+de.Name(), filepath.Join(cpDir, de.Name()), false); err != nil {
					return nil, fmt.Errorf("backup: %w", err)
				}
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("backup: %w", err)
	}
	var entries []audit.Entry
	switch o.DB.Backend {
	case "postgres":
		entries, err = dumpPostgres(ctx, aw, o, m)
	default:
		entries, err = snapshotSQLite(ctx, aw, o, m)
	}
	if err != nil {
		return nil, err
	}
	b, err := marshalAudit(entries)
	if err != nil {
		return nil, err
	}
	if err := aw.addBytes(AuditName, b, false); err != nil {
		return nil, err
	}
	if auditKey != nil {
		m.AuditHead = audit.NewCheckpoint(entries, at, auditKey)
	} else {
		m.AuditHead = audit.Checkpoint{Time: at}
		if n := len(entries); n > 0 {
			m.AuditHead.Seq, m.AuditHead.Hash = entries[n-1].Seq, entries[n-1].Hash
		}
	}
	if err := aw.finish(m); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	return m, nil
}

// keyPaths maps each key's name in the archive to its file.
func (o Options) keyPaths() map[string]string {
	out := map[string]string{}
	for _, k := range keyFiles {
		out[k] = filepath.Join(o.DataDir, k)
	}
	if o.JobKey != "" {
		out["job-signing.key"] = o.JobKey
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// snapshotSQLite copies the live database with VACUUM INTO into a temp
// file, reads its schema version and audit chain from the copy, and adds
// it.
func snapshotSQLite(ctx context.Context, aw *writer, o Options, m *Manifest) ([]audit.Entry, error) {
	tmp := o.TempDir
	if tmp == "" {
		tmp = filepath.Join(o.DataDir, "tmp")
	}
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	dir, err := os.MkdirTemp(tmp, "backup-")
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	defer os.RemoveAll(dir)
	snap := filepath.Join(dir, "patchbay.db")
	if err := o.DB.VacuumInto(ctx, snap); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	m.Method = "sqlite VACUUM INTO (online, one read transaction)"
	// Read as it is: opening it as the server does would migrate it.
	var entries []audit.Entry
	if m.Schema, entries, err = store.ReadSQLiteSnapshot(ctx, snap); err != nil {
		return nil, fmt.Errorf("backup: read the snapshot: %w", err)
	}
	if err := aw.addFile(SQLiteName, snap, false); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	return entries, nil
}

// dumpPostgres runs pg_dump (custom format) in a snapshot exported by a
// read-only repeatable-read transaction, which also reads the schema
// version and the audit chain the dump holds.
func dumpPostgres(ctx context.Context, aw *writer, o Options, m *Manifest) ([]audit.Entry, error) {
	if o.DSN == "" {
		return nil, errors.New("backup: PostgreSQL needs the database's DSN for pg_dump")
	}
	pgDump, err := exec.LookPath("pg_dump")
	if err != nil {
		return nil, errors.New("backup: pg_dump is not installed (Debian: apt-get install postgresql-client, of a version at least the server's)")
	}
	snap, err := o.DB.ExportSnapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	defer snap.Close()
	m.Schema = snap.Version
	m.Method = "pg_dump --format=custom --snapshot (one exported repeatable-read snapshot)"
	tmp := o.TempDir
	if tmp == "" {
		tmp = os.TempDir()
	}
	f, err := os.CreateTemp(tmp, "patchbay-pgdump-")
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	cmd := exec.CommandContext(ctx, pgDump, "--format=custom", "--no-owner", "--no-privileges", "--snapshot="+snap.ID, "--dbname="+libpqDSN(o.DSN))
	cmd.Stdout = f
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("backup: pg_dump: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := aw.add(PostgresName, st.Size(), f, false); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	return snap.Audit, nil
}

// libpqDSN drops the pgx-only parameters libpq's tools refuse.
func libpqDSN(dsn string) string {
	i := strings.IndexByte(dsn, '?')
	if i < 0 {
		return dsn
	}
	var keep []string
	for _, kv := range strings.Split(dsn[i+1:], "&") {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "pool_") || k == "default_query_exec_mode" || k == "statement_cache_capacity" {
			continue
		}
		keep = append(keep, kv)
	}
	if len(keep) == 0 {
		return dsn[:i]
	}
	return dsn[:i] + "?" + strings.Join(keep, "&")
}
