package cli

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/pkgmgr"
	"github.com/patchbay/patchbay/store"
)

// feedsRefreshes counts the feeds.refresh entries of the data dir's audit.
func feedsRefreshes(t *testing.T, data string) int {
	t.Helper()
	db, err := store.Open(context.Background(), filepath.Join(data, "patchbay.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	es, err := db.Audit.Entries(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range es {
		if e.Action == "feeds.refresh" {
			n++
		}
	}
	return n
}

// startQuickstart runs quickstart until it serves and returns its output
// and a stop that waits for it to end.
func startQuickstart(t *testing.T, args ...string) (string, func() string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() { done <- Run(ctx, args, &out, &errb) }()
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(out.String(), "serving; press Ctrl-C") {
		select {
		case code := <-done:
			cancel()
			t.Fatalf("quickstart exited %d:\n%s\n%s", code, out.String(), errb.String())
		default:
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("quickstart did not start:\n%s\n%s", out.String(), errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return out.String(), func() string {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("quickstart stopped with %d:\n%s", code, errb.String())
		}
		return errb.String()
	}
}

// runPrinted runs the next steps quickstart printed — the export lines
// and the commands — as a shell would, in-process, and returns each
// command's exit code, stdout and stderr.
func runPrinted(t *testing.T, summary string) []string {
	t.Helper()
	i := strings.Index(summary, "try, in another shell:\n")
	if i < 0 {
		t.Fatalf("no next steps in:\n%s", summary)
	}
	prog := patchbayCommand(os.Args[0])
	var outs []string
	for _, line := range strings.Split(summary[i:], "\n")[1:] {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "export "):
			k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
			if !ok || strings.ContainsAny(v, " '\"$") {
				t.Fatalf("export line a shell would not take as is: %q", line)
			}
			t.Setenv(k, v)
		case strings.HasPrefix(line, prog+" "):
			var out, errb syncBuffer
			code := Run(context.Background(), strings.Fields(strings.TrimPrefix(line, prog+" ")), &out, &errb)
			if code != 0 {
				t.Errorf("%s: exit %d\n%s", line, code, errb.String())
			}
			outs = append(outs, out.String())
		case line == "" || strings.HasPrefix(line, "serving"):
			return outs
		default:
			t.Fatalf("next step %q is neither an export line nor `%s …`", line, prog)
		}
	}
	return outs
}

// TestQuickstartOneRefreshRerunTokenAndNextSteps: a quickstart refreshes
// the feeds once (one feeds.refresh audit entry, the server's leader does
// not refresh again); a second quickstart on the same data dir prints a
// fresh admin token; the next steps printed, export lines and commands,
// run as printed and the token works.
func TestQuickstartOneRefreshRerunTokenAndNextSteps(t *testing.T) {
	feeds := debianAndKEV(t)
	data := t.TempDir()
	root := fixtureHost(t, "status-bookworm-web-db", "dddddddddddddddddddddddddddddddd", "rerun-1")
	args := []string{"--data-dir", data, "quickstart", "--feeds", feeds, "--listen", "127.0.0.1:0", "--root", root, "--no-package-manager", "--log-level", "warn"}

	first, stop := startQuickstart(t, args...)
	// The leader has had its start (it leads within the election interval)
	// before the stop: a second refresh would be in the audit by then.
	time.Sleep(time.Second)
	stop()
	if !strings.HasPrefix(first, "patchbay quickstart: server on https://127.0.0.1:") {
		t.Errorf("first line: %q", strings.SplitN(first, "\n", 2)[0])
	}
	if !strings.Contains(first, "admin token (shown once): pb_") {
		t.Errorf("no first admin token:\n%s", first)
	}
	if n := feedsRefreshes(t, data); n != 1 {
		t.Errorf("%d feeds.refresh audit entries after one quickstart, want 1", n)
	}

	second, stop := startQuickstart(t, args...)
	defer stop()
	tok := regexp.MustCompile(`admin token \(new at this start, shown once, valid [^)]+\): (pb_\S+)`).FindStringSubmatch(second)
	if tok == nil {
		t.Fatalf("re-run prints no admin token:\n%s", second)
	}
	if !strings.Contains(second, "  export PATCHBAY_TOKEN="+tok[1]+"\n") {
		t.Errorf("the export line does not carry the new token:\n%s", second)
	}
	outs := runPrinted(t, second)
	if len(outs) != 2 || !strings.Contains(outs[0], "rerun-1") || !strings.Contains(outs[1], "rerun-1 (") {
		t.Errorf("next steps printed %d outputs: %q", len(outs), outs)
	}
	if n := feedsRefreshes(t, data); n != 2 {
		t.Errorf("%d feeds.refresh audit entries after two quickstarts, want 2", n)
	}
}

func TestPatchbayCommand(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "patchbay")
	os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755)
	t.Setenv("PATH", dir)
	other := filepath.Join(t.TempDir(), "patchbay")
	for arg0, want := range map[string]string{
		"/tmp/go-build1234/b001/exe/patchbay": "go run ./cmd/patchbay",
		bin:                                   "patchbay",
		other:                                 other,
		"patchbay":                            "patchbay",
	} {
		if got := patchbayCommand(arg0); got != want {
			t.Errorf("patchbayCommand(%q) = %q, want %q", arg0, got, want)
		}
	}
}

// stampedBuffer keeps what is written and when each write came.
type stampedBuffer struct {
	syncBuffer
	mu    sync.Mutex
	marks []stamp
}

type stamp struct {
	at  time.Time
	len int
}

func (s *stampedBuffer) Write(p []byte) (int, error) {
	n, err := s.syncBuffer.Write(p)
	s.mu.Lock()
	s.marks = append(s.marks, stamp{time.Now(), len(s.syncBuffer.String())})
	s.mu.Unlock()
	return n, err
}

// when returns the time the text first was in the buffer.
func (s *stampedBuffer) when(t *testing.T, text string) time.Time {
	t.Helper()
	i := strings.Index(s.String(), text)
	if i < 0 {
		t.Fatalf("output lacks %q:\n%s", text, s.String())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.marks {
		if m.len >= i+len(text) {
			return m.at
		}
	}
	t.Fatalf("no write holds %q", text)
	return time.Time{}
}

// TestQuickstartSummaryBeforeChangelogs runs quickstart for this host (a
// real Debian with apt and pending updates) on a fresh data dir: the
// fleet summary comes within seconds, before the changelogs are read; they
// are read afterwards from the Debian mirror with a progress report, and
// a second check-in carries their CVEs. The order is asserted, not a time
// (a timed bound fails under -race on a loaded machine); the log says how
// long each took.
func TestQuickstartSummaryBeforeChangelogs(t *testing.T) {
	if _, err := os.Stat("/usr/bin/apt-get"); err != nil {
		sharedtest.System(t, "this host has no apt")
	}
	if ups, err := (&pkgmgr.Apt{R: &pkgmgr.Runner{Root: "/"}}).Updates(context.Background()); err != nil || len(ups) == 0 {
		sharedtest.System(t, fmt.Sprintf("this host's apt offers no updates (%d, %v)", len(ups), err))
	}
	hc := http.Client{Timeout: 10 * time.Second}
	if resp, err := hc.Head("http://deb.debian.org/debian/dists/bookworm/Release"); err != nil {
		sharedtest.System(t, "the Debian mirror is not reachable: "+err.Error())
	} else {
		resp.Body.Close()
	}
	debian := sharedtest.Dir(t, "feeds/osv/Debian")
	feeds := t.TempDir()
	os.Symlink(filepath.Join(debian, "all.zip"), filepath.Join(feeds, "all.zip"))
	data := t.TempDir()
	var out, errb stampedBuffer
	start := time.Now()
	code := Run(context.Background(), []string{"--data-dir", data, "quickstart", "--exit", "--feeds", feeds, "--listen", "127.0.0.1:0", "--root", "/", "--log-level", "warn"}, &out, &errb)
	if code != 0 {
		t.Fatalf("quickstart: %d\n%s\n%s", code, out.String(), errb.String())
	}
	summary := out.when(t, "fleet: 1 host;")
	out.when(t, "updates are listed without the CVEs their changelogs name yet: reading the changelogs now\n")
	enriched := out.when(t, "this host: updates checked in again with their CVEs")
	began := errb.when(t, "reading changelogs … (needs the Debian mirror deb.debian.org)\n")
	if !summary.Before(began) || !began.Before(enriched) {
		t.Errorf("summary at %s, changelogs began at %s, CVEs checked in at %s: want in this order", summary.Sub(start), began.Sub(start), enriched.Sub(start))
	}
	m := regexp.MustCompile(`reading changelogs: (\d+) of (\d+) updates name CVEs`).FindStringSubmatch(errb.String())
	if m == nil || m[1] == "0" {
		t.Errorf("no CVEs read from the changelogs:\n%s", errb.String())
	}
	t.Logf("summary after %s, CVEs after %s; %s", summary.Sub(start).Round(100*time.Millisecond), enriched.Sub(start).Round(100*time.Millisecond), m[0])
}
