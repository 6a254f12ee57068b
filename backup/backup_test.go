package backup_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
	"github.com/pressly/goose/v3"

	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/backup"
	"github.com/patchbay/patchbay/internal/pgtest"
	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/store"
)

// fixture is a data dir with a database (tokens, audit entries) and keys.
func fixture(t *testing.T, dsn string) (dataDir string, db *store.DB, secret string) {
	t.Helper()
	ctx := context.Background()
	dataDir = t.TempDir()
	if dsn == "" {
		dsn = filepath.Join(dataDir, "patchbay.db")
	}
	db, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	secret, id, hash, err := auth.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	tok := auth.Token{ID: id, Kind: auth.KindAPI, Role: auth.Admin, Name: "t", Created: time.Now().UTC(), UsesLeft: -1}
	if err := db.Tokens.Create(ctx, tok, hash); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := db.Audit.Append(ctx, "test", "token.create", "token/"+id, i); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"audit-signing.key", "job-signing.key"} {
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		if err := os.WriteFile(filepath.Join(dataDir, k), key.Seed(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dataDir, "tls-cert.pem"), []byte("cert"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dataDir, db, secret
}

func create(t *testing.T, o backup.Options) ([]byte, *backup.Manifest) {
	t.Helper()
	var buf bytes.Buffer
	m, err := backup.Create(context.Background(), &buf, o)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), m
}

func TestSQLiteRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dataDir, db, tokID := fixture(t, "")
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	arch, m := create(t, backup.Options{DB: db, DataDir: dataDir, Recipients: []age.Recipient{id.Recipient()}})
	if !m.Encrypted || !m.KeysIncluded || m.AuditHead.Seq != 3 || m.AuditHead.Signature == "" || m.Schema != store.KnownSchema("sqlite") {
		t.Fatalf("manifest: %+v", m)
	}
	if bytes.Contains(arch, []byte("token.create")) {
		t.Fatal("an encrypted archive shows its content")
	}
	// The live database goes on after the snapshot: the restore has the
	// state as of the backup.
	if _, err := db.Audit.Append(ctx, "test", "after", "x", nil); err != nil {
		t.Fatal(err)
	}
	c, err := backup.Check(ctx, bytes.NewReader(arch), t.TempDir(), []age.Identity{id})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	target := filepath.Join(t.TempDir(), "restored")
	res, err := backup.Restore(ctx, c, backup.RestoreOptions{DataDir: target})
	if err != nil {
		t.Fatal(err)
	}
	if res.SchemaTo != store.KnownSchema("sqlite") {
		t.Fatalf("schema %d", res.SchemaTo)
	}
	for _, f := range []string{"audit-signing.key", "job-signing.key", "tls-cert.pem", "patchbay.db"} {
		want, _ := os.ReadFile(filepath.Join(dataDir, f))
		got, err := os.ReadFile(filepath.Join(target, f))
		if err != nil {
			t.Fatal(err)
		}
		if f != "patchbay.db" && !bytes.Equal(got, want) {
			t.Fatalf("%s differs", f)
		}
	}
	rdb, err := store.Open(ctx, filepath.Join(target, "patchbay.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	ents, err := rdb.Audit.Entries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The backup's three entries, then the restore's own.
	if len(ents) != 4 || ents[2].Hash != m.AuditHead.Hash || ents[3].Action != "backup.restore" {
		t.Fatalf("audit after restore: %+v", ents)
	}
	if _, err := rdb.Tokens.Authenticate(ctx, tokID, time.Now()); err != nil {
		t.Fatalf("token lost: %v", err)
	}
	// A second restore onto the restored dir needs --force.
	c2, err := backup.Check(ctx, bytes.NewReader(arch), t.TempDir(), []age.Identity{id})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := backup.Restore(ctx, c2, backup.RestoreOptions{DataDir: target}); !errors.Is(err, backup.ErrNotEmpty) {
		t.Fatalf("restore over a data dir: %v", err)
	}
}

func TestKeysLeftOutUnencrypted(t *testing.T) {
	t.Parallel()
	dataDir, db, _ := fixture(t, "")
	arch, m := create(t, backup.Options{DB: db, DataDir: dataDir})
	if m.KeysIncluded || len(m.KeysLeftOut) != 2 {
		t.Fatalf("manifest: %+v", m)
	}
	seed, _ := os.ReadFile(filepath.Join(dataDir, "job-signing.key"))
	if bytes.Contains(arch, seed) {
		t.Fatal("a key in clear")
	}
	_, m = create(t, backup.Options{DB: db, DataDir: dataDir, IncludeKeysPlaintext: true})
	if !m.KeysIncluded {
		t.Fatalf("--include-keys-plaintext: %+v", m)
	}
}

// TestCorruptArchives: a flipped byte, a truncation, a wrong key, a newer
// schema: refused naming the part, and nothing written to the target.
func TestCorruptArchives(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dataDir, db, _ := fixture(t, "")
	plain, m := create(t, backup.Options{DB: db, DataDir: dataDir, IncludeKeysPlaintext: true})
	id, _ := age.GenerateX25519Identity()
	other, _ := age.GenerateX25519Identity()
	enc, _ := create(t, backup.Options{DB: db, DataDir: dataDir, Recipients: []age.Recipient{id.Recipient()}})
	flip := func(b []byte, at int) []byte {
		c := append([]byte{}, b...)
		c[at] ^= 0x40
		return c
	}
	cases := []struct {
		name string
		arch []byte
		ids  []age.Identity
		want string
	}{
		{"flipped byte", flip(plain, len(plain)/2), nil, "backup archive: "},
		{"flipped byte encrypted", flip(enc, len(enc)/2), []age.Identity{id}, "does not authenticate"},
		{"truncated", plain[:len(plain)*2/3], nil, "truncated"},
		{"truncated encrypted", enc[:len(enc)-100], []age.Identity{id}, "backup archive: "},
		{"wrong key", enc, []age.Identity{other}, "encryption: none of the identities"},
		{"no key", enc, nil, "encryption: the archive is encrypted"},
		{"not an archive", []byte("hello"), nil, "compression"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			_, err := backup.Check(ctx, bytes.NewReader(tc.arch), tmp, tc.ids)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want %q, got %v", tc.want, err)
			}
			t.Log(err)
			var ce *backup.CorruptError
			if !errors.As(err, &ce) || ce.Part == "" {
				t.Fatalf("no part named: %v", err)
			}
			if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
				t.Fatalf("left %d entries behind", len(ents))
			}
		})
	}
	// A byte changed inside the database part (under an intact
	// compression) is named as that part.
	changed := changePart(t, plain, "SQLite format 3")
	if _, err := backup.Check(ctx, bytes.NewReader(changed), t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), backup.SQLiteName+": its SHA-256 does not match") {
		t.Fatalf("changed database part: %v", err)
	}
	if m.AuditHead.Seq != 3 {
		t.Fatal(m.AuditHead)
	}
}

// changePart flips a byte of the archive's tar stream 100 bytes after
// marker and compresses it again.
func changePart(t *testing.T, arch []byte, marker string) []byte {
	t.Helper()
	zr, err := zstd.NewReader(bytes.NewReader(arch))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	zr.Close()
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(raw, []byte(marker))
	if i < 0 {
		t.Fatalf("no %q in the archive", marker)
	}
	raw[i+100] ^= 0x01
	var out bytes.Buffer
	zw, _ := zstd.NewWriter(&out)
	zw.Write(raw)
	zw.Close()
	return out.Bytes()
}

func TestPostgresRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tool := range []string{"pg_dump", "pg_restore", "psql"} {
		if _, err := exec.LookPath(tool); err != nil {
			sharedtest.System(t, tool+" is not installed (apt-get install postgresql-client)")
		}
	}
	src := pgtest.Fresh(t)
	dataDir, db, tokID := fixture(t, src)
	id, _ := age.GenerateX25519Identity()
	arch, m := create(t, backup.Options{DB: db, DSN: src, DataDir: dataDir, Recipients: []age.Recipient{id.Recipient()}})
	if m.Backend != "postgres" || m.AuditHead.Seq != 3 {
		t.Fatalf("manifest %+v", m)
	}
	c, err := backup.Check(ctx, bytes.NewReader(arch), t.TempDir(), []age.Identity{id})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dst := pgtest.Fresh(t)
	target := filepath.Join(t.TempDir(), "data")
	if _, err := backup.Restore(ctx, c, backup.RestoreOptions{DataDir: target, DSN: dst}); err != nil {
		t.Fatal(err)
	}
	rdb, err := store.Open(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := rdb.Audit.Entries(ctx)
	rdb.Close()
	if err != nil || len(ents) != 4 || ents[2].Hash != m.AuditHead.Hash {
		t.Fatalf("audit after restore: %v %+v", err, ents)
	}
	if _, err := os.Stat(filepath.Join(target, "job-signing.key")); err != nil {
		t.Fatal(err)
	}
	// The database holds data now: a restore needs --force, and with it
	// replaces it.
	if _, err := backup.Restore(ctx, c, backup.RestoreOptions{DataDir: t.TempDir() + "/x", DSN: dst}); !errors.Is(err, backup.ErrNotEmpty) {
		t.Fatalf("restore over a database: %v", err)
	}
	if _, err := backup.Restore(ctx, c, backup.RestoreOptions{DataDir: target, DSN: dst, Force: true}); err != nil {
		t.Fatal(err)
	}
	rdb, err = store.Open(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	if _, err := rdb.Tokens.Authenticate(ctx, tokID, time.Now()); err != nil {
		t.Fatalf("token: %v", err)
	}
	if ents, _ := rdb.Audit.Entries(ctx); len(ents) != 4 {
		t.Fatalf("forced restore: %d audit entries, want 4", len(ents))
	}
}

// TestNewerSchemaRefused: an archive of a database migrated past what
// this binary knows is refused before anything is written.
func TestNewerSchemaRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dataDir, db, _ := fixture(t, "")
	next := store.KnownSchema("sqlite") + 1
	if _, err := db.SQL().ExecContext(ctx, `INSERT INTO goose_db_version(version_id, is_applied) VALUES(?, TRUE)`, next); err != nil {
		t.Fatal(err)
	}
	arch, m := create(t, backup.Options{DB: db, DataDir: dataDir, IncludeKeysPlaintext: true})
	if m.Schema != next {
		t.Fatalf("schema %d, want %d", m.Schema, next)
	}
	tmp := t.TempDir()
	_, err := backup.Check(ctx, bytes.NewReader(arch), tmp, nil)
	if err == nil || !strings.Contains(err.Error(), "newer than this patchbay knows") {
		t.Fatalf("newer schema: %v", err)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Fatalf("left %d entries behind", len(ents))
	}
}

// TestOlderSchemaMigrated: an archive of a database one migration behind
// (00015 undone as its Down does) is restored and migrated to the schema
// this binary knows.
func TestOlderSchemaMigrated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dataDir, db, _ := fixture(t, "")
	known := store.KnownSchema("sqlite")
	// Back to schema 14 by the migrations' own down steps, whatever
	// migrations come after it.
	mig, err := goose.NewProvider(goose.DialectSQLite3, db.SQL(), os.DirFS(filepath.Join("..", "store", "sqlite", "migrations")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mig.DownTo(ctx, 14); err != nil {
		t.Fatal(err)
	}
	arch, m := create(t, backup.Options{DB: db, DataDir: dataDir, IncludeKeysPlaintext: true})
	if m.Schema != 14 {
		t.Fatalf("schema %d, want 14", m.Schema)
	}
	c, err := backup.Check(ctx, bytes.NewReader(arch), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	target := filepath.Join(t.TempDir(), "data")
	res, err := backup.Restore(ctx, c, backup.RestoreOptions{DataDir: target})
	if err != nil {
		t.Fatal(err)
	}
	if res.SchemaFrom != 14 || res.SchemaTo != known {
		t.Fatalf("schema %d → %d, want 14 → %d", res.SchemaFrom, res.SchemaTo, known)
	}
	rdb, err := store.Open(ctx, filepath.Join(target, "patchbay.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	if _, err := rdb.Users.List(ctx); err != nil {
		t.Fatalf("the migrated database has no users table: %v", err)
	}
}
