package web_test

import (
	"context"
	"crypto/ed25519"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/backup"
	"github.com/patchbay/patchbay/kinds"
	"github.com/patchbay/patchbay/server"
	"github.com/patchbay/patchbay/store"
	"github.com/patchbay/patchbay/web"
)

// TestBackupsPage: an admin sees the schedule and takes a backup now,
// which the list shows verified; a viewer has neither page nor action.
func TestBackupsPage(t *testing.T) {
	t.Parallel()
	f := backupsFixture(t)
	ada, vera := f.person("ada"), f.person("vera")
	ada.login(password)
	vera.login(password)
	if code, _, _ := vera.get("/backups"); code != http.StatusForbidden {
		t.Errorf("backups page as a viewer: %d", code)
	}
	code, _, page := ada.get("/backups")
	if code != 200 || !strings.Contains(page, "No archive yet") || !strings.Contains(page, "No backup has succeeded yet") || !strings.Contains(page, `href="/backups"`) {
		t.Fatalf("backups page: %d %s", code, page)
	}
	code, loc, body := ada.post("/backups", url.Values{"csrf": {csrfOf(t, page)}})
	if code != http.StatusSeeOther || loc != "/backups" {
		t.Fatalf("back up now: %d %s %s", code, loc, body)
	}
	_, _, page = ada.get("/backups")
	if !strings.Contains(page, `id="last-success"`) || !strings.Contains(page, "verified ") || !strings.Contains(page, "(keys left out)") {
		t.Fatalf("after a backup: %s", page)
	}
	// A second one in the same second gets its own name.
	ada.post("/backups", url.Values{"csrf": {csrfOf(t, page)}})
	if _, _, page = ada.get("/backups"); strings.Count(page, ".pbk</code>") != 2 {
		t.Fatalf("after two backups: %s", page)
	}
}

// backupsFixture is a server with scheduled backups and its UI, with an
// admin (ada) and a viewer (vera).
func backupsFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	dataDir := t.TempDir()
	db, err := store.Open(ctx, filepath.Join(dataDir, "patchbay.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	os.WriteFile(filepath.Join(dataDir, "job-signing.key"), testJobKey.Seed(), 0o600)
	c := &clock{at: time.Now().UTC()}
	_, key, _ := ed25519.GenerateKey(nil)
	srv, err := server.New(server.Config{DB: db, Kinds: kinds.All(), ReplicaID: "test", AuditKey: key, JobKey: testJobKey, CheckpointDir: t.TempDir(), Now: c.now,
		Backup: server.BackupSchedule{Dir: filepath.Join(t.TempDir(), "backups"), Every: 24 * time.Hour, Keep: 3, Options: backup.Options{DataDir: dataDir}}})
	if err != nil {
		t.Fatal(err)
	}
	var handler http.Handler
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	ts.StartTLS()
	t.Cleanup(ts.Close)
	ui, err := web.New(ctx, web.Config{API: srv.Handler(), Users: db.Users, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	handler = ui.Handler()
	f := &fixture{t: t, db: db, srv: srv, ui: ui, ts: ts, clock: c}
	for _, u := range []struct {
		name string
		role auth.Role
	}{{"vera", auth.Viewer}, {"ada", auth.Admin}} {
		hash, _ := auth.HashPassword(password)
		if err := db.Users.Add(ctx, auth.User{Name: u.name, Role: u.role, Source: auth.SourceLocal, Created: c.now()}, hash); err != nil {
			t.Fatal(err)
		}
	}
	return f
}
