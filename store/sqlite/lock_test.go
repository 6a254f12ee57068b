package sqlite

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/auth"
)

// TestLockForServer: a second open of the same file for serving fails
// naming the file, the lock file and the pid holding it, while an open
// that does not serve (the CLI's local commands) reads and writes beside
// it; once the first closes, the second serves.
func TestLockForServer(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "patchbay.db")
	first, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.LockForServer(); err != nil {
		t.Fatal(err)
	}
	if err := first.LockForServer(); err != nil {
		t.Errorf("the same DB locking again: %v", err)
	}
	second, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("an open that does not serve, beside a server: %v", err)
	}
	defer second.Close()
	if err := second.Tokens.Create(ctx, auth.Token{ID: "local", Kind: auth.KindAPI, Role: auth.Admin, Created: time.Now(), UsesLeft: -1}, "h"); err != nil {
		t.Errorf("a local write beside a server: %v", err)
	}
	err = second.LockForServer()
	want := fmt.Sprintf("%s: pid %d holds its lock %s.lock", path, os.Getpid(), path)
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), want) {
		t.Fatalf("a second server: %v; want ErrInUse saying %q", err, want)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if err := second.LockForServer(); err != nil {
		t.Errorf("after the first server closed: %v", err)
	}
}

// TestLockForServerAcrossProcesses: the lock held by another process (this
// test binary run again) refuses this one, naming that process's pid.
func TestLockForServerAcrossProcesses(t *testing.T) {
	if p := os.Getenv("PATCHBAY_TEST_LOCK_HOLD"); p != "" {
		db, err := Open(context.Background(), p)
		if err == nil {
			err = db.LockForServer()
		}
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("locked")
		bufio.NewReader(os.Stdin).ReadString('\n') // until the parent closes stdin
		db.Close()
		os.Exit(0)
	}
	path := filepath.Join(t.TempDir(), "patchbay.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockForServerAcrossProcesses$")
	cmd.Env = append(os.Environ(), "PATCHBAY_TEST_LOCK_HOLD="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); strings.TrimSpace(line) != "locked" {
		t.Fatalf("the other process: %q", line)
	}
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.LockForServer()
	if want := fmt.Sprintf("pid %d holds its lock %s.lock", cmd.Process.Pid, path); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), want) {
		t.Fatalf("beside another process's server: %v; want %q", err, want)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := db.LockForServer(); err != nil {
		t.Errorf("after the other process ended: %v", err)
	}
}
