package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	agelib "filippo.io/age"
	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/backup"
	"github.com/patchbay/patchbay/store"
)

func newBackupCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Back up, verify and restore the database and the data dir's keys",
		Long: `backup writes an archive of the database and the data dir (--data-dir, --db)
while the server goes on serving: SQLite is copied with VACUUM INTO in one
read transaction, PostgreSQL with pg_dump in one exported snapshot. The
archive holds the database, the audit, job-signing and TLS keys, the TLS
certificate, the signed audit checkpoints, the audit chain and a manifest
(schema and patchbay versions, time, SHA-256 of every part, the audit head).

--recipient encrypts it with age; without one the keys are left out unless
--include-keys-plaintext says otherwise. See docs/backup.md.`,
	}
	cmd.AddCommand(newBackupCreateCmd(e), newBackupVerifyCmd(e), newBackupRestoreCmd(e))
	return cmd
}

// recipientsOf parses --recipient values: age public keys (age1…) or
// files of them.
func recipientsOf(vals []string) ([]agelib.Recipient, error) {
	var out []agelib.Recipient
	for _, v := range vals {
		if strings.HasPrefix(v, "age1") {
			r, err := agelib.ParseX25519Recipient(v)
			if err != nil {
				return nil, fmt.Errorf("--recipient %q: %w", v, err)
			}
			out = append(out, r)
			continue
		}
		f, err := os.Open(v)
		if err != nil {
			return nil, fmt.Errorf("--recipient %q: neither an age public key (age1…) nor a readable file: %w", v, err)
		}
		rs, err := agelib.ParseRecipients(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("--recipient %s: %w", v, err)
		}
		out = append(out, rs...)
	}
	return out, nil
}

// identitiesOf reads --identity files (age-keygen's output).
func identitiesOf(files []string) ([]agelib.Identity, error) {
	var out []agelib.Identity
	for _, p := range files {
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("--identity: %w", err)
		}
		ids, err := agelib.ParseIdentities(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("--identity %s: %w", p, err)
		}
		out = append(out, ids...)
	}
	return out, nil
}

// writeArchive writes an archive to path through a temp file renamed
// into place (mode 0600): a failed backup leaves no partial file.
func writeArchive(ctx context.Context, path string, o backup.Options) (*backup.Manifest, int64, error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return nil, 0, fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(f.Name())
	m, err := backup.Create(ctx, f, o)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, 0, err
	}
	st, err := os.Stat(f.Name())
	if err != nil {
		return nil, 0, err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return nil, 0, fmt.Errorf("backup: %w", err)
	}
	return m, st.Size(), nil
}

func newBackupCreateCmd(e *env) *cobra.Command {
	var recipients []string
	var plainKeys bool
	var jobKey, cpDir string
	cmd := &cobra.Command{
		Use:   "create FILE",
		Short: "Write an archive of the live database and the data dir's keys",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			rs, err := recipientsOf(recipients)
			if err != nil {
				return err
			}
			db, err := e.openExistingDB(ctx)
			if err != nil {
				return err
			}
			defer db.Close()
			start := time.Now()
			dsn := ""
			if store.IsPostgres(e.dsn) {
				dsn = e.dsn
			}
			m, size, err := writeArchive(ctx, args[0], backup.Options{DB: db, DSN: dsn, DataDir: e.dataDir, JobKey: jobKey, CheckpointDir: cpDir,
				Recipients: rs, IncludeKeysPlaintext: plainKeys})
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "wrote %s: %s database, schema %d, audit head %d, %d parts, %d bytes in %s\n",
				args[0], m.Backend, m.Schema, m.AuditHead.Seq, len(m.Parts), size, time.Since(start).Round(time.Millisecond))
			if len(m.KeysLeftOut) > 0 {
				fmt.Fprintf(e.stderr, "patchbay: keys left out of the unencrypted archive: %s (keep them safe elsewhere, or use --recipient, or --include-keys-plaintext)\n", strings.Join(m.KeysLeftOut, ", "))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&recipients, "recipient", nil, "encrypt to this age public key (age1…) or file of them (repeatable)")
	f.BoolVar(&plainKeys, "include-keys-plaintext", false, "write the keys into an unencrypted archive")
	f.StringVar(&jobKey, "job-key", "", "the job-signing key file when the server is given --job-key")
	f.StringVar(&cpDir, "checkpoint-dir", "", "the server's --checkpoint-dir (default DATA_DIR/checkpoints)")
	return cmd
}

func newBackupVerifyCmd(e *env) *cobra.Command {
	var idents []string
	cmd := &cobra.Command{
		Use:   "verify FILE",
		Short: "Check an archive: parts against the manifest, schema, audit chain against its head",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := identitiesOf(idents)
			if err != nil {
				return err
			}
			c, err := checkArchive(cmd.Context(), args[0], ids, os.TempDir())
			if err != nil {
				return err
			}
			defer c.Close()
			m := c.Manifest
			fmt.Fprintf(e.stdout, "%s: verified: %s database (schema %d, patchbay %s) of %s, %d parts, audit chain of %d entries reaches its head %s\n",
				args[0], m.Backend, m.Schema, m.Patchbay, m.Created.Format(time.RFC3339), len(m.Parts), c.AuditEntries, shortHash(m.AuditHead.Hash))
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&idents, "identity", nil, "age identity file that decrypts the archive (repeatable)")
	return cmd
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func checkArchive(ctx context.Context, path string, ids []agelib.Identity, tmp string) (*backup.Checked, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c, err := backup.Check(ctx, f, tmp, ids)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

func newBackupRestoreCmd(e *env) *cobra.Command {
	var idents []string
	var force bool
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Restore an archive into --data-dir (SQLite) or --db postgres://…",
		Long: `restore verifies the whole archive first and writes nothing when it is bad.
A SQLite archive becomes the data dir --data-dir (built beside it, renamed into
place); a PostgreSQL one is loaded into --db in one transaction, its keys into
--data-dir. A target that holds data needs --force. A schema newer than this
binary knows is refused; an older one is migrated. Rollouts that were active
are paused with an audit entry: resume them once the agents have reported the
jobs they ran after the backup (docs/backup.md).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if !e.dataDirNamed {
				return errors.New("restore: name the target data dir with --data-dir")
			}
			ids, err := identitiesOf(idents)
			if err != nil {
				return err
			}
			tmp := filepath.Dir(filepath.Clean(e.dataDir))
			if err := os.MkdirAll(tmp, 0o700); err != nil {
				return err
			}
			c, err := checkArchive(ctx, args[0], ids, tmp)
			if err != nil {
				return err
			}
			defer c.Close()
			dsn := ""
			if e.dsn != "" {
				if !store.IsPostgres(e.dsn) {
					return fmt.Errorf("--db %s: a restore goes to a data dir (SQLite) or to PostgreSQL (postgres://…)", e.dsn)
				}
				dsn = e.dsn
			}
			res, err := backup.Restore(ctx, c, backup.RestoreOptions{DataDir: e.dataDir, DSN: dsn, Force: force})
			if err != nil {
				return err
			}
			m := res.Manifest
			fmt.Fprintf(e.stdout, "restored the backup of %s into %s (schema %d → %d, audit head %d)\n", m.Created.Format(time.RFC3339), restoreTarget(e.dataDir, dsn), res.SchemaFrom, res.SchemaTo, m.AuditHead.Seq)
			for _, id := range res.Paused {
				fmt.Fprintf(e.stdout, "paused rollout %s: resume it (patchbay rollout resume %s) once its agents have reported\n", id, id)
			}
			if !m.KeysIncluded {
				fmt.Fprintf(e.stderr, "patchbay: the archive holds no keys (%s): put the originals into %s before starting the server\n", strings.Join(m.KeysLeftOut, ", "), e.dataDir)
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&idents, "identity", nil, "age identity file that decrypts the archive (repeatable)")
	cmd.Flags().BoolVar(&force, "force", false, "replace a data dir or database that holds data")
	return cmd
}

func restoreTarget(dataDir, dsn string) string {
	if dsn != "" {
		return "the PostgreSQL database (keys in " + dataDir + ")"
	}
	return dataDir
}
