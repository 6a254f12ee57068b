package server_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/backup"
	"github.com/patchbay/patchbay/server"
)

// TestScheduledBackups: the schedule (due when the newest verified
// archive is older than Every), encrypted archives verified as written,
// retention, the API and metrics, and a failure raising a webhook.
func TestScheduledBackups(t *testing.T) {
	t.Parallel()
	var clock atomic.Pointer[time.Time]
	set := func(t time.Time) { clock.Store(&t) }
	set(time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC))
	now := func() time.Time { return *clock.Load() }
	var mu sync.Mutex
	var hooked []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		hooked = append(hooked, r.Header.Get("X-Patchbay-Event")+" "+string(b))
		mu.Unlock()
	}))
	defer hook.Close()
	id, _ := age.GenerateX25519Identity()
	dir := filepath.Join(t.TempDir(), "backups")
	dataDir := t.TempDir()
	os.WriteFile(filepath.Join(dataDir, "job-signing.key"), testJobKey.Seed(), 0o600)
	f := newFixture(t, "sqlite", func(c *server.Config) {
		c.Now = now
		c.Webhooks = []server.Webhook{{Name: "ops", URL: hook.URL, Format: "json"}}
		c.Backup = server.BackupSchedule{Dir: dir, Every: 24 * time.Hour, Keep: 2,
			Options: backup.Options{DataDir: dataDir, Recipients: []age.Recipient{id.Recipient()}}}
	})
	admin, viewer := f.api(auth.Admin), f.api(auth.Viewer)
	ctx := context.Background()

	if code, _ := f.do("POST", api.Prefix+"/backups", viewer, nil); code != 403 {
		t.Fatalf("backup by a viewer: %d", code)
	}
	for i := 0; i < 3; i++ {
		code, body := f.do("POST", api.Prefix+"/backups", admin, nil)
		if code != 201 || !strings.Contains(string(body), `"verified":true`) || !strings.Contains(string(body), `"encrypted":true`) {
			t.Fatalf("backup %d: %d %s", i, code, body)
		}
		set(now().Add(time.Hour))
	}
	var st api.BackupStatus
	code, body := f.do("GET", api.Prefix+"/backups", admin, nil)
	f.decode(body, &st)
	if code != 200 || len(st.Archives) != 2 || !st.Archives[0].Verified || st.LastSuccess.IsZero() {
		t.Fatalf("status: %d %+v", code, st)
	}
	// The archive on disk decrypts and verifies with the identity.
	b, err := os.ReadFile(filepath.Join(dir, st.Archives[0].Name))
	if err != nil {
		t.Fatal(err)
	}
	c, err := backup.Check(ctx, bytes.NewReader(b), t.TempDir(), []age.Identity{id})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if !c.Manifest.KeysIncluded {
		t.Error("the encrypted archive holds no keys")
	}
	// The schedule: not due while the newest is younger than a day.
	if took, err := f.srv.BackupIfDue(ctx); took || err != nil {
		t.Fatalf("a backup an hour after the last: %t %v", took, err)
	}
	set(now().Add(24 * time.Hour))
	if took, err := f.srv.BackupIfDue(ctx); !took || err != nil {
		t.Fatalf("no backup a day after the last: %t %v", took, err)
	}
	_, body = f.do("GET", "/metrics", "", nil)
	for _, m := range []string{"patchbay_backup_last_success_timestamp_seconds", "patchbay_backup_duration_seconds", "patchbay_backup_size_bytes", "patchbay_backup_failures_total 0"} {
		if !strings.Contains(string(body), m) {
			t.Errorf("metrics: no %s", m)
		}
	}
	// A failure: the backup dir cannot be written.
	os.Chmod(dir, 0o500)
	defer os.Chmod(dir, 0o700)
	if os.Geteuid() == 0 {
		// root writes anyway: make the dir a file instead.
		os.Chmod(dir, 0o700)
		os.RemoveAll(dir)
		os.WriteFile(dir, nil, 0o600)
	}
	if _, err := f.srv.RunBackup(ctx, "test"); err == nil {
		t.Fatal("a backup into an unwritable dir succeeded")
	}
	if err := f.srv.DeliverNotifications(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := strings.Join(hooked, "\n")
	mu.Unlock()
	if !strings.Contains(got, "backup.failed") {
		t.Errorf("no webhook for the failed backup: %q", got)
	}
	_, body = f.do("GET", "/metrics", "", nil)
	if !strings.Contains(string(body), "patchbay_backup_failures_total 1") {
		t.Error("the failure is not counted")
	}
	code, body = f.do("GET", api.Prefix+"/backups", admin, nil)
	if code != 200 || !strings.Contains(string(body), `"last_error"`) {
		t.Errorf("status after a failure: %d %s", code, body)
	}
}
