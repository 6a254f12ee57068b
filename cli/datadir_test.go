package cli

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/job"
	"github.com/patchbay/patchbay/store"
)

// startInDir starts a server (TLS, loopback) on the data dir, with the
// options set changes, and stops it when the test ends.
func startInDir(t *testing.T, dir string, set ...func(*serverOpts)) (*running, *syncBuffer) {
	t.Helper()
	o := &serverOpts{}
	o.flags(&cobra.Command{})
	o.listen = "127.0.0.1:0"
	for _, f := range set {
		f(o)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	r, err := (&env{dataDir: dir, log: log}).startServer(ctx, o, log)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-r.done; err != nil {
			t.Error(err)
		}
	})
	return r, logs
}

// storedJobKey reads the job key's row of server_keys as it is stored.
func storedJobKey(t *testing.T, db *store.DB) string {
	t.Helper()
	var v string
	if err := db.SQL().QueryRow(`SELECT private_key FROM server_keys WHERE name = 'jobs-ed25519'`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// recoverable tells whether a stored value gives away the key: as the
// base64 seed (the clear form of earlier versions), its hex or its bytes.
func recoverable(v string, key ed25519.PrivateKey) bool {
	if seed, err := base64.StdEncoding.DecodeString(v); err == nil && len(seed) == ed25519.SeedSize &&
		ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey).Equal(key.Public()) {
		return true
	}
	return strings.Contains(v, base64.StdEncoding.EncodeToString(key.Seed())) || bytes.Contains([]byte(v), key.Seed())
}

// TestDataDirPrivate: in a data dir made 0755 with umask 022, holding an
// audit key left 0644, a server start leaves the dir 0700 and the
// database (with its -wal and -shm), the audit, TLS and job keys 0600,
// says which modes it narrowed, and keeps no job key in the database.
func TestDataDirPrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	seed := make([]byte, ed25519.SeedSize)
	rand.Read(seed)
	if err := os.WriteFile(filepath.Join(dir, "audit-signing.key"), seed, 0o644); err != nil {
		t.Fatal(err)
	}
	r, logs := startInDir(t, dir)
	key, err := r.srv.JobKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m := st.Mode().Perm(); m != 0o700 {
		t.Errorf("data dir: mode %04o, want 0700", m)
	}
	for _, f := range []string{"patchbay.db", "patchbay.db-wal", "patchbay.db-shm", "audit-signing.key", "tls-key.pem", "tls-cert.pem", "job-signing.key"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Error(err)
			continue
		}
		if m := st.Mode().Perm(); m != 0o600 {
			t.Errorf("%s: mode %04o, want 0600", f, m)
		}
	}
	for _, want := range []string{"file=" + dir + " old_mode=0755 new_mode=0700", "file=" + filepath.Join(dir, "audit-signing.key") + " old_mode=0644 new_mode=0600"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log does not say %q:\n%s", want, logs)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "job-signing.key"))
	if err != nil || !bytes.Equal(b, key.Seed()) {
		t.Fatalf("job-signing.key does not hold the key the server signs with (%v)", err)
	}
	v := storedJobKey(t, r.db)
	if recoverable(v, key) {
		t.Fatalf("server_keys holds the job key: %q", v)
	}
	if v != "ed25519-file:"+job.KeyID(key.Public().(ed25519.PublicKey)) {
		t.Errorf("server_keys holds %q, want the key's id", v)
	}
}

// TestJobKeyMigrated: a job key an earlier version kept in clear in the
// database moves to job-signing.key (0600), its clear copy is replaced by
// its id, and a job signed before verifies with the key agents know.
func TestJobKeyMigrated(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(dir, "patchbay.db"))
	if err != nil {
		t.Fatal(err)
	}
	seed := make([]byte, ed25519.SeedSize)
	rand.Read(seed)
	// As the earlier server stored it.
	if _, err := db.Rollouts.Key(ctx, "jobs-ed25519", func() (string, error) { return base64.StdEncoding.EncodeToString(seed), nil }, time.Now()); err != nil {
		t.Fatal(err)
	}
	db.Close()
	before := ed25519.NewKeyFromSeed(seed)
	signed, err := job.Sign(job.Manifest{JobID: "r/h", Attempt: 1, HostID: "h", Install: []job.Package{{Name: "openssl", Version: "3.0.15-1~deb12u1"}},
		NotAfter: time.Now().Add(time.Hour)}, before)
	if err != nil {
		t.Fatal(err)
	}

	r, logs := startInDir(t, dir)
	if !strings.Contains(logs.String(), "job-signing key moved out of the database") {
		t.Errorf("the log does not say the key moved:\n%s", logs)
	}
	key, err := r.srv.JobKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	if !pub.Equal(before.Public()) {
		t.Fatal("the migrated key is not the one agents were given")
	}
	if _, err := job.Verify(signed, pub, "h", time.Now()); err != nil {
		t.Fatalf("a job signed before the migration: %v", err)
	}
	p := filepath.Join(dir, "job-signing.key")
	b, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(b, seed) {
		t.Fatalf("job-signing.key does not hold the migrated seed (%v)", err)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Errorf("job-signing.key: mode %04o", st.Mode().Perm())
	}
	if v := storedJobKey(t, r.db); recoverable(v, key) {
		t.Fatalf("server_keys still holds the job key in clear: %q", v)
	}
}

// TestJobKeyMismatchRefused: a server whose job key file is not the key
// the database names does not start.
func TestJobKeyMismatchRefused(t *testing.T) {
	dir := t.TempDir()
	o := &serverOpts{}
	o.flags(&cobra.Command{})
	o.listen = "127.0.0.1:0"
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	r, err := (&env{dataDir: dir, log: log}).startServer(ctx, o, log)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-r.done; err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other.key")
	seed := make([]byte, ed25519.SeedSize)
	rand.Read(seed)
	if err := os.WriteFile(other, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	o.jobKey = other
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	if r, err := (&env{dataDir: dir, log: log}).startServer(ctx2, o, log); err == nil {
		cancel2()
		<-r.done
		t.Fatal("a server with another job key started")
	} else if !strings.Contains(err.Error(), "same --job-key file") {
		t.Fatalf("refused, but: %v", err)
	}
}
