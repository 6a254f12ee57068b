package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/internal/sharedtest"
)

// freshHome points HOME and XDG_DATA_HOME at new empty directories and
// clears the data dir and database of the environment, so a command that
// made the default data dir would be seen; it returns the two directories.
func freshHome(t *testing.T) (home, xdg string) {
	t.Helper()
	home, xdg = t.TempDir(), t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_DATA_HOME", xdg)
	t.Setenv("PATCHBAY_DATA_DIR", "")
	t.Setenv("PATCHBAY_DB", "")
	t.Setenv(envServer, "")
	t.Setenv(envToken, "")
	t.Setenv(envPin, "")
	t.Setenv(envCA, "")
	return home, xdg
}

// assertEmpty fails when a command left anything in dir.
func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		t.Errorf("%s: %s was created", dir, de.Name())
	}
}

// runArgs runs patchbay with exactly args (no --data-dir).
func runArgs(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// serverEnv starts a server in its own data dir and points the client
// environment (PATCHBAY_SERVER, PATCHBAY_PIN, PATCHBAY_TOKEN with the
// first admin token) at it, under a fresh HOME.
func serverEnv(t *testing.T, set ...func(*serverOpts)) (r *running, home, xdg string) {
	t.Helper()
	home, xdg = freshHome(t)
	r, _ = startInDir(t, t.TempDir(), set...)
	t.Setenv(envServer, r.url)
	t.Setenv(envPin, r.fingerprint)
	t.Setenv(envToken, r.adminToken)
	return r, home, xdg
}

// TestAdminTokenViaServer: with PATCHBAY_SERVER set, admin token create
// makes the token on the server (an agent enrolls with it), list and
// revoke act there too, and no data dir is made under HOME.
func TestAdminTokenViaServer(t *testing.T) {
	r, home, xdg := serverEnv(t)
	code, tok, stderr := runArgs(t, "admin", "token", "create", "--enrollment", "--uses", "1", "--name", "rack-7")
	tok = strings.TrimSpace(tok)
	if code != 0 || !strings.HasPrefix(tok, "pb_") || !strings.HasPrefix(stderr, "server "+r.url+"\n") {
		t.Fatalf("create: %d %q %s", code, tok, stderr)
	}
	// The server knows it: an agent enrolls with it.
	base := fixtureHost(t, "status-bookworm-minbase", "dddddddddddddddddddddddddddddddd", "rack-7-1")
	agentDir := t.TempDir()
	code, stdout, stderr := runArgs(t, "--data-dir", agentDir, "agent", "--once", "--root", base, "--enroll-token", tok, "--no-package-manager")
	if code != 0 || !strings.Contains(stdout, "checked in as host") {
		t.Fatalf("agent --once with the token: %d\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, stderr = runArgs(t, "admin", "token", "list")
	id := auth.IDOf(tok)
	row := regexp.MustCompile(regexp.QuoteMeta(id) + `\s+enrollment\s+agent\s+rack-7\s.*\s0\s+enrollment token has no uses left`)
	if code != 0 || !row.MatchString(stdout) {
		t.Errorf("list: %d\n%s\n%s", code, stdout, stderr)
	}
	if code, _, stderr = runArgs(t, "admin", "token", "revoke", id); code != 0 || !strings.Contains(stderr, "revoked token "+id) {
		t.Errorf("revoke: %d %s", code, stderr)
	}
	if ok, err := r.db.Tokens.List(context.Background()); err != nil {
		t.Fatal(err)
	} else {
		found := false
		for _, tk := range ok {
			found = found || (tk.ID == id && tk.Revoked)
		}
		if !found {
			t.Errorf("the server's database does not hold %s revoked: %+v", id, ok)
		}
	}
	// An explicit --data-dir with a server configured: the server, and
	// said so.
	unused := filepath.Join(t.TempDir(), "unused")
	if code, _, stderr = runArgs(t, "--data-dir", unused, "admin", "token", "list"); code != 0 || !strings.Contains(stderr, "add --local to act on the local database") {
		t.Errorf("list with --data-dir: %d %s", code, stderr)
	}
	if _, err := os.Stat(unused); err == nil {
		t.Errorf("%s was created", unused)
	}
	if code, _, stderr = runArgs(t, "admin", "token", "list", "--local", "--server", r.url); code != 2 || !strings.Contains(stderr, "--local and --server: give one") {
		t.Errorf("--local --server: %d %s", code, stderr)
	}
	assertEmpty(t, home)
	assertEmpty(t, xdg)
}

// TestFeedsViaServer: feeds refresh makes the server import its
// --feeds-dir; feeds status then shows the server's counts, marking its
// KEV catalog stale; feeds import refuses to write a local database
// behind the configured server's back.
func TestFeedsViaServer(t *testing.T) {
	kev := filepath.Join(sharedtest.Dir(t, "feeds/kev"), "known_exploited_vulnerabilities.json")
	_, home, xdg := serverEnv(t, func(o *serverOpts) { o.feedsDirs = []string{kev} })
	code, stdout, stderr := runArgs(t, "feeds", "refresh")
	if code != 0 || !strings.Contains(stdout, "refreshed in") || !strings.Contains(stdout, "1404 KEV entries") {
		t.Fatalf("feeds refresh: %d\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, stderr = runArgs(t, "feeds", "status")
	if code != 0 || !regexp.MustCompile(`(?m)^kev\s+1404\s.*\sSTALE\s+`+regexp.QuoteMeta(kev)+`$`).MatchString(stdout) ||
		!strings.Contains(stdout, "1 stale (data older than 7d): kev\nrefresh them: patchbay feeds refresh") || !strings.HasPrefix(stderr, "server ") {
		t.Errorf("feeds status: %d\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, _ = runArgs(t, "feeds", "status", "-o", "json", "--stale-after", "10000d")
	var st struct {
		Sources []struct {
			Source  string `json:"source"`
			Records int    `json:"records"`
		} `json:"sources"`
		Stale []string `json:"stale"`
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &st) != nil || len(st.Sources) != 1 || st.Sources[0].Records != 1404 || len(st.Stale) != 0 {
		t.Errorf("feeds status -o json --stale-after 10000d: %d %s", code, stdout)
	}
	code, _, stderr = runArgs(t, "feeds", "import", kev)
	if code != 2 || !strings.Contains(stderr, "patchbay feeds import writes the local database, but a server is configured") ||
		!strings.Contains(stderr, "`patchbay feeds refresh`") || !strings.Contains(stderr, "add --local") {
		t.Errorf("feeds import with a server: %d %s", code, stderr)
	}
	assertEmpty(t, home)
	assertEmpty(t, xdg)
	// --local imports into the local database, as asked.
	local := t.TempDir()
	if code, stdout, stderr = runArgs(t, "--data-dir", local, "feeds", "import", "--local", kev); code != 0 || !strings.Contains(stdout, "1404 KEV entries") {
		t.Errorf("feeds import --local: %d %s %s", code, stdout, stderr)
	}
}

// TestAuditViaServer: audit verify downloads the server's log and checks
// the chain here, naming the entry an edit in the server's database
// broke; audit checkpoint has the server sign its head and says what it
// wrote; export writes the server's log.
func TestAuditViaServer(t *testing.T) {
	r, home, xdg := serverEnv(t)
	for _, name := range []string{"a", "b", "c"} {
		if code, _, stderr := runArgs(t, "admin", "token", "create", "--name", name); code != 0 {
			t.Fatalf("token %s: %s", name, stderr)
		}
	}
	es, err := r.db.Audit.Entries(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := len(es)
	code, stdout, stderr := runArgs(t, "audit", "verify")
	if code != 0 || stdout != "audit chain intact: "+strconv.Itoa(n)+" entries\n" || !strings.HasPrefix(stderr, "server "+r.url) {
		t.Fatalf("verify: %d %q %s", code, stdout, stderr)
	}
	cp := filepath.Join(t.TempDir(), "head.json")
	code, stdout, stderr = runArgs(t, "audit", "checkpoint", "--out", cp)
	want := regexp.MustCompile(`^wrote ` + regexp.QuoteMeta(cp) + `: checkpoint of entry ` + strconv.Itoa(n) + ` \(head hash ` + es[n-1].Hash + `\), signed \S+\n$`)
	if code != 0 || !want.MatchString(stdout) {
		t.Fatalf("checkpoint: %d %q %s", code, stdout, stderr)
	}
	if code, stdout, stderr = runArgs(t, "audit", "verify", "--checkpoint", cp); code != 0 || !strings.Contains(stdout, "reaches the checkpoint of entry "+strconv.Itoa(n)) {
		t.Errorf("verify --checkpoint: %d %q %s", code, stdout, stderr)
	}
	export := filepath.Join(t.TempDir(), "audit.jsonl")
	if code, _, stderr = runArgs(t, "audit", "export", "--output-file", export); code != 0 {
		t.Fatalf("export: %s", stderr)
	}
	if b, err := os.ReadFile(export); err != nil || strings.Count(string(b), `"action":"token.create"`) != 4 || strings.Count(string(b), "\n") != n {
		t.Errorf("export: %v\n%s", err, b)
	}
	// A checkpoint signed with another key than the server's is refused.
	other := emptyDB(t)
	if code, _, stderr := run(t, other, "audit", "checkpoint", "--local", "--out", filepath.Join(other, "cp.json")); code != 0 {
		t.Fatalf("local checkpoint: %s", stderr)
	}
	if code, _, stderr = runArgs(t, "audit", "verify", "--checkpoint", filepath.Join(other, "cp.json")); code != 2 || !strings.Contains(stderr, "signature does not verify") {
		t.Errorf("checkpoint of another key: %d %s", code, stderr)
	}
	// Edited in the server's database: the client names the entry.
	if _, err := r.db.SQL().Exec("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2"); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr = runArgs(t, "audit", "verify"); code != 2 || !strings.Contains(stderr, "audit chain broken at entry 2: its content does not match its hash (edited)") {
		t.Errorf("verify of the edited chain: %d %s", code, stderr)
	}
	if code, _, stderr = runArgs(t, "audit", "checkpoint", "--out", cp); code != 2 || !strings.Contains(stderr, "refusing to checkpoint a broken chain: audit chain broken at entry 2") {
		t.Errorf("checkpoint of the edited chain: %d %s", code, stderr)
	}
	assertEmpty(t, home)
	assertEmpty(t, xdg)
}

// TestReadOnlyWithoutTarget: with no server configured, no data dir
// named and no database in the default one, the commands that read say how
// to name one and create nothing (with --local: that there is none); once
// feeds import has made the default database, they use it and say so.
func TestReadOnlyWithoutTarget(t *testing.T) {
	home, xdg := freshHome(t)
	path := filepath.Join(xdg, "patchbay", "patchbay.db")
	cmds := [][]string{{"feeds", "status"}, {"audit", "verify"}, {"audit", "export"}, {"admin", "token", "list"}, {"admin", "token", "create"}}
	for _, args := range cmds {
		code, stdout, stderr := runArgs(t, args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, "no server configured and no local database at "+path+" (nothing was created): set PATCHBAY_SERVER (or --server URL)") ||
			!strings.Contains(stderr, "--data-dir DIR or --db DSN") {
			t.Errorf("%v: %d %q %s", args, code, stdout, stderr)
		}
		code, _, stderr = runArgs(t, append(args, "--local")...)
		if code != 2 || !strings.Contains(stderr, "no local database at "+path+" (nothing was created)") {
			t.Errorf("%v --local: %d %s", args, code, stderr)
		}
		named := filepath.Join(t.TempDir(), "named")
		code, _, stderr = runArgs(t, append([]string{"--data-dir", named}, args...)...)
		if code != 2 || !strings.Contains(stderr, "no local database at "+filepath.Join(named, "patchbay.db")+" (nothing was created)") {
			t.Errorf("--data-dir %s %v: %d %s", named, args, code, stderr)
		}
		if _, err := os.Stat(named); err == nil {
			t.Errorf("%v made %s", args, named)
		}
	}
	if code, _, stderr := runArgs(t, "scan", "testdata/app"); code != 0 || !strings.Contains(stderr, "no advisory database at "+path) {
		t.Errorf("scan: %d %s", code, stderr)
	}
	assertEmpty(t, home)
	assertEmpty(t, xdg)
	// The standalone workflow: feeds import makes the default database,
	// and the readers use it.
	kev := filepath.Join(sharedtest.Dir(t, "feeds/kev"), "known_exploited_vulnerabilities.json")
	if code, _, stderr := runArgs(t, "feeds", "import", kev); code != 0 || !strings.Contains(stderr, "local database "+path) {
		t.Fatalf("feeds import: %d %s", code, stderr)
	}
	if code, stdout, stderr := runArgs(t, "feeds", "status"); code != 0 || !strings.HasPrefix(stderr, "local database "+path+"\n") || !strings.Contains(stdout, "kev") {
		t.Errorf("feeds status after import: %d %s %s", code, stdout, stderr)
	}
	if code, stdout, _ := runArgs(t, "audit", "verify"); code != 0 || stdout != "audit chain intact: 1 entry\n" {
		t.Errorf("audit verify after import: %d %s", code, stdout)
	}
}

// TestScanWarnsStaleFeeds: the shared KEV catalog is more than a year old;
// scan says how old and how to refresh, unless --stale-after allows it,
// and feeds status of the local database marks it.
func TestScanWarnsStaleFeeds(t *testing.T) {
	dir := withFeeds(t)
	code, _, stderr := run(t, dir, "scan", "-f", "json", "testdata/app")
	m := regexp.MustCompile("stale advisory feeds in " + regexp.QuoteMeta(filepath.Join(dir, "patchbay.db")) + ` \(data older than 7d\): .*kev (\d+) days old \(\d{4}-\d\d-\d\d\).*Refresh with ` + "`patchbay feeds sync`").FindStringSubmatch(stderr)
	if code != 0 || m == nil {
		t.Fatalf("scan: %d %s", code, stderr)
	}
	if days, _ := strconv.Atoi(m[1]); days < 400 {
		t.Errorf("kev %d days old; the shared catalog is from 2025-08", days)
	}
	if code, _, stderr = run(t, dir, "scan", "-f", "json", "--stale-after", "0", "testdata/app"); code != 0 || strings.Contains(stderr, "stale") {
		t.Errorf("scan --stale-after 0: %d %s", code, stderr)
	}
	code, stdout, stderr := run(t, dir, "feeds", "status")
	if code != 0 || !regexp.MustCompile(`(?m)^kev\s+1404\s.*\sSTALE\s`).MatchString(stdout) || !strings.Contains(stdout, "refresh them: patchbay feeds sync") ||
		!strings.HasPrefix(stderr, "local database "+filepath.Join(dir, "patchbay.db")) {
		t.Errorf("feeds status: %d\n%s\n%s", code, stdout, stderr)
	}
}

// TestAuditVerifyHelp: the --checkpoint placeholder is FILE, not a
// command.
func TestAuditVerifyHelp(t *testing.T) {
	code, stdout, _ := run(t, t.TempDir(), "audit", "verify", "--help")
	if code != 0 || !strings.Contains(stdout, "--checkpoint FILE ") || strings.Contains(stdout, "--checkpoint patchbay") {
		t.Errorf("audit verify --help: %d\n%s", code, stdout)
	}
}
