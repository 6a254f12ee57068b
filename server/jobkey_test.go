package server_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/kinds"
	"github.com/patchbay/patchbay/server"
	"github.com/patchbay/patchbay/store"
)

// TestJobKeyShared: replicas of one database sign with one key: a replica
// given another refuses, as does one whose database holds another clear
// key from an earlier version; a clear copy of its own key is replaced by
// the key's id. LoadJobKey makes no second key beside one the database
// names.
func TestJobKeyShared(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := store.Open(ctx, filepath.Join(dir, "patchbay.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	jobKey := func(key ed25519.PrivateKey) error {
		srv, err := server.New(server.Config{DB: db, Kinds: kinds.All(), JobKey: key})
		if err != nil {
			t.Fatal(err)
		}
		_, err = srv.JobKey(ctx)
		return err
	}
	stored := func() string {
		var v string
		if err := db.SQL().QueryRow(`SELECT private_key FROM server_keys WHERE name = 'jobs-ed25519'`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if _, err := server.New(server.Config{DB: db, Kinds: kinds.All()}); err == nil {
		t.Error("a server without a job key started")
	}

	_, other, _ := ed25519.GenerateKey(nil)
	legacy := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	if _, err := db.Rollouts.Key(ctx, "jobs-ed25519", func() (string, error) { return base64.StdEncoding.EncodeToString(legacy.Seed()), nil }, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := jobKey(other); err == nil || !strings.Contains(err.Error(), "another job-signing key") {
		t.Errorf("a replica with another key than the clear one: %v", err)
	}
	if err := jobKey(legacy); err != nil {
		t.Fatal(err)
	}
	if v := stored(); strings.Contains(v, base64.StdEncoding.EncodeToString(legacy.Seed())) || !strings.HasPrefix(v, "ed25519-file:") {
		t.Fatalf("the clear key was not replaced: %q", v)
	}
	if err := jobKey(legacy); err != nil {
		t.Errorf("the same key again: %v", err)
	}
	if err := jobKey(other); err == nil || !strings.Contains(err.Error(), "same --job-key file") {
		t.Errorf("a replica with another key: %v", err)
	}
	if _, _, err := server.LoadJobKey(ctx, db, filepath.Join(dir, "job-signing.key")); err == nil || !strings.Contains(err.Error(), "copy that file") {
		t.Errorf("LoadJobKey without the file of the key the database names: %v", err)
	}
}
