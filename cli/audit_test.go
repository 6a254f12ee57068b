package cli

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/kinds"
	"github.com/patchbay/patchbay/server"
	"github.com/patchbay/patchbay/store"
)

// TestAuditVerifyServerHistory: `audit verify --checkpoint` reads the
// history the server itself appends (audit-checkpoints.jsonl, written by
// Server.Checkpoint with the data dir's key) as well as its latest file,
// and a truncated chain fails against the history.
func TestAuditVerifyServerHistory(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	key, err := (&env{dataDir: dir}).auditKey() // the key `patchbay server` signs with
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(ctx, filepath.Join(dir, "patchbay.db"))
	if err != nil {
		t.Fatal(err)
	}
	cpd := t.TempDir()
	_, jobKey, _ := ed25519.GenerateKey(nil)
	srv, err := server.New(server.Config{DB: db, Kinds: kinds.All(), ReplicaID: "test", AuditKey: key, JobKey: jobKey, CheckpointDir: cpd})
	if err != nil {
		t.Fatal(err)
	}
	for i, action := range []string{"host.enroll", "label.set", "token.create"} {
		if _, err := db.Audit.Append(ctx, "test", action, "host/1", map[string]int{"i": i}); err != nil {
			t.Fatal(err)
		}
		if _, err := srv.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	hist := filepath.Join(cpd, "audit-checkpoints.jsonl")
	if b, err := os.ReadFile(hist); err != nil || strings.Count(string(b), "\n") != 3 {
		t.Fatalf("history: %q %v", b, err)
	}
	code, out, errs := run(t, dir, "audit", "verify", "--checkpoint", hist)
	if code != 0 || !strings.Contains(out, "audit chain intact: 3 entries, reaches the checkpoint of entry 3") || !strings.Contains(out, "and the 2 before it") {
		t.Errorf("verify --checkpoint history: %d %q %s", code, out, errs)
	}
	if code, out, errs := run(t, dir, "audit", "verify", "--checkpoint", filepath.Join(cpd, "audit-checkpoint.json")); code != 0 || !strings.Contains(out, "reaches the checkpoint of entry 3") {
		t.Errorf("verify --checkpoint latest: %d %q %s", code, out, errs)
	}
	// Truncated behind patchbay's back: the history catches it.
	sdb, err := sql.Open("sqlite", filepath.Join(dir, "patchbay.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sdb.Exec("DELETE FROM audit_log WHERE seq = 3"); err != nil {
		t.Fatal(err)
	}
	sdb.Close()
	if code, _, errs := run(t, dir, "audit", "verify", "--checkpoint", hist); code != 2 || !strings.Contains(errs, "audit chain broken at entry 3: the chain ends at 2 but the checkpoint") {
		t.Errorf("truncated against the history: %d %s", code, errs)
	}
	// A forged line in the history is named.
	b, _ := os.ReadFile(hist)
	lines := strings.SplitAfter(string(b), "\n")
	lines[1] = strings.Replace(lines[1], `"seq":2`, `"seq":1`, 1)
	os.WriteFile(hist, []byte(strings.Join(lines, "")), 0o644)
	if code, _, errs := run(t, dir, "audit", "verify", "--checkpoint", hist); code != 2 || !strings.Contains(errs, "line 2 (entry 1") || !strings.Contains(errs, "signature does not verify") {
		t.Errorf("forged history line: %d %s", code, errs)
	}
}
