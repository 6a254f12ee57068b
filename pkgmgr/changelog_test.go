package pkgmgr

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

const testChangelog = `hello (2.10-3+deb12u1) bookworm-security; urgency=high

  * Fix CVE-2099-0002 and CVE-2099-0003.

 -- Maintainer <m@example.org>  Mon, 01 Jan 2099 00:00:00 +0000

hello (2.10-3) unstable; urgency=medium

  * Fix CVE-2099-0001.

 -- Maintainer <m@example.org>  Sun, 01 Jan 2023 00:00:00 +0000
`

// buildDeb makes a real .deb with dpkg-deb holding changelog as
// usr/share/doc/NAME/changelog.Debian.gz.
func buildDeb(t *testing.T, name, version, changelog string) []byte {
	t.Helper()
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("dpkg-deb is not installed")
	}
	dir := t.TempDir()
	pkg := filepath.Join(dir, "pkg")
	doc := filepath.Join(pkg, "usr/share/doc", name)
	if err := os.MkdirAll(doc, 0o755); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(changelog))
	zw.Close()
	if err := os.WriteFile(filepath.Join(doc, "changelog.Debian.gz"), gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(pkg, "DEBIAN"), 0o755)
	control := fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: all\nMaintainer: M <m@example.org>\nDescription: test\n", name, version)
	if err := os.WriteFile(filepath.Join(pkg, "DEBIAN/control"), []byte(control), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "p.deb")
	if b, err := exec.Command("dpkg-deb", "--root-owner-group", "--build", pkg, out).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fakeAptURIs answers `apt-get --print-uris download` as apt does, with
// base/NAME.deb for every target, of the size and hash of debs[NAME]
// (debs[SOURCE] for a binary of another name).
func fakeAptURIs(base string, debs map[string][]byte) func(ctx context.Context, args []string) (string, int, error) {
	return func(ctx context.Context, args []string) (string, int, error) {
		if len(args) < 5 || args[0] != "apt-get" || args[1] != "--print-uris" {
			return "unexpected command " + strings.Join(args, " "), 100, nil
		}
		var out strings.Builder
		for _, t := range args[4:] {
			name, ver, _ := strings.Cut(t, "=")
			src := name
			if _, ok := debs[name]; !ok {
				src = "hello"
			}
			deb := debs[src]
			sum := sha256.Sum256(deb)
			fmt.Fprintf(&out, "'%s/%s.deb' %s_%s_all.deb %d SHA256:%s\n", base, src, name, ver, len(deb), hex.EncodeToString(sum[:]))
		}
		return out.String(), 0, nil
	}
}

// TestChangelogsCachedOnlyThenDownloaded: cache-only lists the updates
// at once, pending and without CVEs, and fetches nothing; a download from
// a mirror on loopback then fills the CVEs, with progress; offline leaves
// them unknown with the reason; once cached, nothing is fetched again.
func TestChangelogsCachedOnlyThenDownloaded(t *testing.T) {
	debs := map[string][]byte{
		"hello": buildDeb(t, "hello", "2.10-3+deb12u1", testChangelog),
		"hola":  buildDeb(t, "hola", "2.10-3+deb12u1", strings.ReplaceAll(testChangelog, "hello (", "hola (")),
	}
	var mu sync.Mutex
	fetched := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		fetched++
		mu.Unlock()
		deb, ok := debs[strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/"), ".deb")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(deb)
	}))
	defer srv.Close()
	cache := t.TempDir()
	ups := func() []Update {
		var out []Update
		for _, n := range []string{"hello", "hello-doc", "hello-extra"} {
			out = append(out, Update{Name: n, SourceName: "hello", SourceVersion: "2.10-3", Installed: "2.10-3", Candidate: "2.10-3+deb12u1", CVEs: []string{}})
		}
		// Another source, so two changelogs are read concurrently.
		out = append(out, Update{Name: "hola", SourceName: "hola", Installed: "2.10-2", Candidate: "2.10-3+deb12u1", CVEs: []string{}})
		return out
	}
	a := &Apt{R: &Runner{Exec: fakeAptURIs(srv.URL, debs)}}

	c := &Changelogs{CacheDir: cache, CachedOnly: true}
	u := ups()
	if err := c.fill(context.Background(), a, u); err != nil {
		t.Fatal(err)
	}
	for _, x := range u {
		if !x.Pending || len(x.CVEs) != 0 {
			t.Errorf("cache-only %s: pending %v, CVEs %v; want pending, none", x.Name, x.Pending, x.CVEs)
		}
	}
	if fetched != 0 || len(a.R.Log()) != 0 {
		t.Fatalf("cache-only ran %d commands and fetched %d .debs", len(a.R.Log()), fetched)
	}

	offline := &Changelogs{CacheDir: cache, Concurrency: 2}
	off := &Apt{R: &Runner{Exec: fakeAptURIs("http://127.0.0.1:1", debs)}}
	u = ups()
	if err := offline.fill(context.Background(), off, u); err != nil {
		t.Fatal(err)
	}
	for _, x := range u {
		if len(x.CVEs) != 0 || !strings.Contains(x.Problem, "CVEs unknown: download http://127.0.0.1:1/") {
			t.Errorf("offline %s: CVEs %v, problem %q", x.Name, x.CVEs, x.Problem)
		}
	}

	var seen []string
	c = &Changelogs{CacheDir: cache, Concurrency: 2, Progress: func(done, total int) { seen = append(seen, fmt.Sprintf("%d/%d", done, total)) }}
	u = ups()
	if err := c.fill(context.Background(), a, u); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(seen, " "); got != "0/2 1/2 2/2" {
		t.Errorf("progress %q, want 0/2 1/2 2/2", got)
	}
	for _, x := range u {
		want := "CVE-2099-0002 CVE-2099-0003"
		if x.Name == "hola" { // installed 2.10-2: the 2.10-3 entry is news too
			want = "CVE-2099-0001 CVE-2099-0002 CVE-2099-0003"
		}
		if got := strings.Join(x.CVEs, " "); got != want || x.Pending || x.Problem != "" {
			t.Errorf("%s: CVEs %q, pending %v, problem %q; want %q", x.Name, got, x.Pending, x.Problem, want)
		}
	}
	if fetched != 2 {
		t.Errorf("fetched %d .debs, want 2 (one per source version)", fetched)
	}
	if n := len(a.R.Log()); n != 1 {
		t.Errorf("%d apt-get --print-uris runs, want 1 for all the .debs", n)
	}

	c = &Changelogs{CacheDir: cache, CachedOnly: true}
	u = ups()
	if err := c.fill(context.Background(), a, u); err != nil {
		t.Fatal(err)
	}
	if fetched != 2 || u[0].Pending || len(u[0].CVEs) != 2 {
		t.Errorf("cached: fetched %d, %s pending %v CVEs %v", fetched, u[0].Name, u[0].Pending, u[0].CVEs)
	}
}
