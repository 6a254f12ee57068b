package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestFileModes: whatever the umask, the database and its -wal and -shm
// files are 0600, and a database found 0644 is narrowed.
func TestFileModes(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	ctx := context.Background()
	check := func(path string) {
		t.Helper()
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if m := st.Mode().Perm(); m != 0o600 {
				t.Errorf("%s: mode %o, want 600", filepath.Base(p), m)
			}
		}
	}
	fresh := filepath.Join(t.TempDir(), "patchbay.db")
	db, err := Open(ctx, fresh)
	if err != nil {
		t.Fatal(err)
	}
	check(fresh)
	db.Close()

	// A database made before, 0644 with its -wal and -shm: narrowed.
	wide := filepath.Join(t.TempDir(), "patchbay.db")
	for _, p := range []string{wide, wide + "-wal", wide + "-shm"} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	db, err = Open(ctx, wide)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	check(wide)
}

// TestSwapKey: a server key is replaced only while it holds the value
// expected.
func TestSwapKey(t *testing.T) {
	db := openTest(t)
	ctx := context.Background()
	if _, ok, err := db.Rollouts.StoredKey(ctx, "k"); err != nil || ok {
		t.Fatalf("StoredKey of none: ok %v, err %v", ok, err)
	}
	if _, err := db.Rollouts.Key(ctx, "k", func() (string, error) { return "one", nil }, time.Now()); err != nil {
		t.Fatal(err)
	}
	if done, err := db.Rollouts.SwapKey(ctx, "k", "other", "two"); err != nil || done {
		t.Fatalf("swap from a value not held: done %v, err %v", done, err)
	}
	if done, err := db.Rollouts.SwapKey(ctx, "k", "one", "two"); err != nil || !done {
		t.Fatalf("swap: done %v, err %v", done, err)
	}
	if v, ok, err := db.Rollouts.StoredKey(ctx, "k"); err != nil || !ok || v != "two" {
		t.Fatalf("after the swap: %q %v %v", v, ok, err)
	}
}
