// Package gittest serves bare git repositories over git daemon on
// loopback for the tests that push fix branches (forge, server, web).
package gittest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/patchbay/patchbay/internal/sharedtest"
)

// Git runs git in dir with no user or system configuration and a fixed
// author, and returns its trimmed output.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_AUTHOR_NAME=dev", "GIT_AUTHOR_EMAIL=dev@example.com",
		"GIT_COMMITTER_NAME=dev", "GIT_COMMITTER_EMAIL=dev@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// Repo is a bare repository served by git daemon and a working copy of
// it whose main branch holds the files given.
type Repo struct {
	URL  string // git://127.0.0.1:PORT/NAME.git
	Bare string // the bare repository's directory
	Work string // the working copy, main checked out
}

// NewRepo creates NAME.git with files (path in the repository → contents)
// committed on main, and serves it on the first free loopback port in
// [lo, hi]: each test package takes its own part of the 18300–18349 range
// reserved for these tests.
func NewRepo(t testing.TB, name string, files map[string][]byte, lo, hi int) *Repo {
	t.Helper()
	sharedtest.Tool(t, "git", "fix branches are pushed with git")
	root := t.TempDir()
	r := &Repo{Bare: filepath.Join(root, "srv", name+".git"), Work: filepath.Join(root, "work")}
	Git(t, root, "init", "--quiet", "--bare", "-b", "main", r.Bare)
	Git(t, root, "init", "--quiet", "-b", "main", r.Work)
	for p, b := range files {
		dst := filepath.Join(r.Work, p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	Git(t, r.Work, "add", ".")
	Git(t, r.Work, "commit", "--quiet", "-m", name)
	Git(t, r.Work, "push", "--quiet", r.Bare, "main")
	r.URL = serve(t, filepath.Join(root, "srv"), lo, hi) + "/" + name + ".git"
	return r
}

// taken are the ports this process's daemons hold: parallel tests of one
// package do not race for the same one.
var (
	mu    sync.Mutex
	taken = map[int]bool{}
)

func serve(t testing.TB, base string, lo, hi int) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	execPath := Git(t, base, "--exec-path")
	daemon := filepath.Join(execPath, "git-daemon")
	for port := lo; port <= hi; port++ {
		if taken[port] {
			continue
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		l.Close()
		// git-daemon itself, not the git wrapper (killing the wrapper
		// left the daemon running, holding its port and inherited
		// descriptors), in a process group of its own so that its
		// per-connection children go with it.
		cmd := exec.Command(daemon, "--reuseaddr", "--listen=127.0.0.1", fmt.Sprintf("--port=%d", port),
			"--base-path="+base, "--export-all", "--enable=receive-pack", "--informative-errors", base)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		up := false
		for i := 0; i < 100 && !up; i++ {
			select {
			case <-exited: // another process took the port meanwhile
				i = 100
				continue
			default:
			}
			if c, err := net.Dial("tcp", addr); err == nil {
				c.Close()
				up = true
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if !up {
			kill(cmd)
			<-exited
			continue
		}
		taken[port] = true
		t.Cleanup(func() {
			kill(cmd)
			<-exited
			mu.Lock()
			delete(taken, port)
			mu.Unlock()
		})
		return "git://" + addr
	}
	t.Fatalf("no free loopback port in %d–%d for git daemon", lo, hi)
	return ""
}

// kill ends the daemon's process group.
func kill(cmd *exec.Cmd) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}
