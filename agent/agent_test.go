package agent_test

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patchbay/patchbay/agent"
	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/feeds"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/kinds"
	"github.com/patchbay/patchbay/pkgmgr"
	"github.com/patchbay/patchbay/server"
	"github.com/patchbay/patchbay/store"
)

// env is a server over TLS on loopback and its database.
type env struct {
	t   *testing.T
	db  *store.DB
	srv *server.Server
	// gate, when set, answers instead of the server (an outage, a proxy
	// refusing).
	gate atomic.Pointer[func(w http.ResponseWriter, r *http.Request) bool]
	ts   *httptest.Server
	pin  string
	// clock is the server's time; zero: the real time.
	clock atomic.Pointer[time.Time]
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "patchbay.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	feed := filepath.Join(sharedtest.Dir(t, "feeds/osv/Debian"), "all.zip")
	if _, err := (&feeds.Importer{Store: db}).ImportPaths(ctx, []string{feed}); err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(nil)
	e := &env{t: t, db: db}
	_, jobKey, _ := ed25519.GenerateKey(nil)
	srv, err := server.New(server.Config{DB: db, Kinds: kinds.All(), AuditKey: key, JobKey: jobKey, Checkin: time.Minute, Now: func() time.Time {
		if c := e.clock.Load(); c != nil {
			return *c
		}
		return time.Now()
	}})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	e.ts = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g := e.gate.Load(); g != nil && (*g)(w, r) {
			return
		}
		srv.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(e.ts.Close)
	e.pin = api.Fingerprint(e.ts.Certificate().Raw)
	return e
}

func (e *env) enrollToken(uses int) string {
	secret, id, hash, err := auth.NewSecret()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.db.Tokens.Create(context.Background(), auth.Token{ID: id, Kind: auth.KindEnrollment, Role: auth.Agent, Created: time.Now(), UsesLeft: uses}, hash); err != nil {
		e.t.Fatal(err)
	}
	return secret
}

// host makes a chroot-like host root from a real dpkg fixture.
func host(t *testing.T, fixture, machineID, hostname string) string {
	root := sharedtest.DebianRoot(t, fixture)
	os.WriteFile(filepath.Join(root, "etc/machine-id"), []byte(machineID+"\n"), 0o444)
	os.WriteFile(filepath.Join(root, "etc/hostname"), []byte(hostname+"\n"), 0o644)
	return root
}

func (e *env) agent(root, token string) *agent.Agent {
	hc, err := api.NewHTTPClient("", e.pin)
	if err != nil {
		e.t.Fatal(err)
	}
	return &agent.Agent{
		Client:      &api.Client{Base: e.ts.URL, HTTP: hc},
		EnrollToken: token,
		StateDir:    filepath.Join(root, "var/lib/patchbay/agent"),
		Collector:   agent.Collector{Root: root, NoPackageManager: true, Labels: map[string]string{"env": "test"}, Version: "test"},
	}
}

// TestEnrollAndCheckIn: a chroot host enrolls over pinned TLS, keeps its
// credential (0600) and checks in; the second run sends only the hash.
func TestEnrollAndCheckIn(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	root := host(t, "status-bookworm-web-db", "0123456789abcdef0123456789abcdef", "web-1")
	a := e.agent(root, e.enrollToken(1))
	resp, err := a.Once(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Inventory != "stored" || resp.Open == 0 {
		t.Errorf("first check-in: %+v", resp)
	}
	st, err := os.Stat(filepath.Join(a.StateDir, "credential.json"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("credential file: %v %v", st, err)
	}
	cred, err := agent.LoadCredential(a.StateDir)
	if err != nil || cred.HostID != resp.HostID || cred.MachineID != "0123456789abcdef0123456789abcdef" {
		t.Fatalf("credential %+v %v", cred, err)
	}
	h, err := e.db.Fleet.Host(ctx, resp.HostID)
	if err != nil || h.Hostname != "web-1" || h.Ecosystem != "Debian:12" || h.Facts.Labels["env"] != "test" || h.Facts.AgentVersion != "test" {
		t.Errorf("host %+v %v", h, err)
	}
	// The one-use enrollment token is spent: a second run must not need it.
	resp2, err := a.Once(ctx)
	if err != nil || resp2.HostID != resp.HostID || resp2.Inventory != "unchanged" || resp2.Open != resp.Open {
		t.Fatalf("second check-in %+v %v", resp2, err)
	}
	if a.Pending() != 0 {
		t.Errorf("%d reports left on disk", a.Pending())
	}
	// A wrong pin is refused before anything is sent.
	bad := e.agent(root, "")
	hc, _ := api.NewHTTPClient("", "sha256:"+strings.Repeat("0", 64))
	bad.Client.HTTP = hc
	if _, err := bad.Once(ctx); err == nil || !strings.Contains(err.Error(), "pinned") {
		t.Errorf("wrong pin: %v", err)
	}
}

// TestOutageKeepsReports: while the server is down, reports stay on disk
// (one per change); after a restart of the agent they are sent oldest
// first, and the upgrade made during the outage is remediated at the time
// it was seen, not when the server heard of it.
func TestOutageKeepsReports(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	root := host(t, "status-bookworm-web-db", "11111111111111111111111111111111", "db-1")
	a := e.agent(root, e.enrollToken(1))
	now := time.Now().UTC().Add(-3 * time.Hour)
	a.Now = func() time.Time { return now }
	e.clock.Store(&now)
	first, err := a.Once(ctx)
	if err != nil {
		t.Fatal(err)
	}
	down := func(w http.ResponseWriter, r *http.Request) bool {
		w.WriteHeader(http.StatusBadGateway)
		return true
	}
	e.gate.Store(&down)
	now = now.Add(time.Hour)
	if _, err := a.Once(ctx); !api.IsStatus(err, http.StatusBadGateway) {
		t.Fatalf("during the outage: %v", err)
	}
	now = now.Add(10 * time.Minute)
	if _, err := a.Once(ctx); err == nil || a.Pending() != 1 {
		t.Fatalf("unchanged host during the outage: %d reports kept (want 1), %v", a.Pending(), err)
	}
	// Upgrade openssl in the host's dpkg database.
	status := filepath.Join(root, "var/lib/dpkg/status")
	b, _ := os.ReadFile(status)
	up := upgrade(string(b), "openssl", "9.9.9-1")
	if up == string(b) {
		t.Fatal("no openssl in the fixture")
	}
	os.WriteFile(status, []byte(up), 0o644)
	now = now.Add(10 * time.Minute)
	upgradedAt := now
	if _, err := a.Once(ctx); err == nil || a.Pending() != 2 {
		t.Fatalf("after the upgrade: %d reports kept (want 2)", a.Pending())
	}
	// The server is back an hour later; a new agent process (same state
	// dir) sends them.
	back := upgradedAt.Add(time.Hour)
	e.clock.Store(&back)
	e.gate.Store(nil)
	a2 := e.agent(root, "")
	a2.Now = func() time.Time { return upgradedAt.Add(time.Minute) }
	last, err := a2.Flush(ctx, mustCred(t, a2.StateDir))
	if err != nil {
		t.Fatal(err)
	}
	if a2.Pending() != 0 || last.Inventory != "stored" || last.Closed == 0 {
		t.Fatalf("after the outage: %+v, %d pending", last, a2.Pending())
	}
	fs, err := e.db.Findings.List(ctx, first.HostID)
	if err != nil {
		t.Fatal(err)
	}
	closed := 0
	for _, f := range fs {
		if f.RemediatedAt.IsZero() {
			continue
		}
		closed++
		if f.Package != "openssl" || !f.RemediatedAt.Equal(upgradedAt.Truncate(time.Microsecond)) && !f.RemediatedAt.Equal(upgradedAt) {
			t.Errorf("%s/%s remediated at %v, want %v", f.Package, f.Vulnerability, f.RemediatedAt, upgradedAt)
		}
	}
	if closed != last.Closed {
		t.Errorf("%d closed findings, %d reported", closed, last.Closed)
	}
}

func mustCred(t *testing.T, dir string) *agent.Credential {
	c, err := agent.LoadCredential(dir)
	if err != nil || c == nil {
		t.Fatal(c, err)
	}
	return c
}

// upgrade sets the Version of every binary of a source package.
func upgrade(status, source, version string) string {
	paras := strings.Split(status, "\n\n")
	for i, p := range paras {
		lines := strings.Split(p, "\n")
		match := false
		for _, l := range lines {
			if l == "Package: "+source || strings.HasPrefix(l, "Source: "+source) && (len(l) == len("Source: "+source) || l[len("Source: "+source)] == ' ') {
				match = true
			}
		}
		if !match {
			continue
		}
		for j, l := range lines {
			if strings.HasPrefix(l, "Version: ") {
				lines[j] = "Version: " + version
			}
			if strings.HasPrefix(l, "Source: ") {
				lines[j] = "Source: " + source
			}
		}
		paras[i] = strings.Join(lines, "\n")
	}
	return strings.Join(paras, "\n\n")
}

// TestRefusedCredentialIsKept: a 401 (a proxy's, say) does not make the
// agent drop its credential or enroll again; once the server accepts it
// again, check-ins go on as the same host. A revoked credential stays
// refused, with no re-enrollment loop.
func TestRefusedCredentialIsKept(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	root := host(t, "status-bookworm-minbase", "22222222222222222222222222222222", "base-1")
	enroll := e.enrollToken(5)
	a := e.agent(root, enroll)
	first, err := a.Once(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var refused atomic.Int32
	deny := func(w http.ResponseWriter, r *http.Request) bool {
		refused.Add(1)
		http.Error(w, `{"error":"invalid credential","code":"unauthorized"}`, http.StatusUnauthorized)
		return true
	}
	e.gate.Store(&deny)
	if _, err := a.Once(ctx); !api.IsStatus(err, http.StatusUnauthorized) {
		t.Fatalf("behind the refusing proxy: %v", err)
	}
	if c := mustCred(t, a.StateDir); c.HostID != first.HostID {
		t.Fatalf("credential replaced: %+v", c)
	}
	e.gate.Store(nil)
	again, err := a.Once(ctx)
	if err != nil || again.HostID != first.HostID {
		t.Fatalf("after the refusals: %+v %v", again, err)
	}
	// Revoked: refused, and Run does not enroll again (it would with the
	// enrollment token, which still has uses).
	if err := e.db.Tokens.Revoke(ctx, auth.IDOf(mustCred(t, a.StateDir).Secret)); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	sleeps := 0
	a.Sleep = func(ctx context.Context, d time.Duration) error {
		sleeps++
		if d <= 0 || d > time.Minute {
			t.Errorf("backoff %v", d)
		}
		if sleeps == 3 {
			cancel()
			return context.Canceled
		}
		return nil
	}
	a.Interval = time.Minute
	if err := a.Run(rctx); err != nil {
		t.Fatal(err)
	}
	hosts, _ := e.db.Fleet.Hosts(ctx, fleet.HostFilter{})
	if len(hosts) != 1 {
		t.Errorf("%d hosts after a revoked credential: the agent enrolled again", len(hosts))
	}
	if c := mustCred(t, a.StateDir); c.HostID != first.HostID {
		t.Errorf("credential replaced after revocation")
	}
}

// TestClonedHostIsFlagged: a copy of a host's root (same machine-id, no
// state dir) enrolls as a second host, flagged as a clone — never merged.
// A copied state dir (another machine-id) is refused instead.
func TestClonedHostIsFlagged(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tok := e.enrollToken(3)
	root := host(t, "status-bookworm-minbase", "33333333333333333333333333333333", "golden")
	orig, err := e.agent(root, tok).Once(ctx)
	if err != nil {
		t.Fatal(err)
	}
	clone := host(t, "status-bookworm-minbase", "33333333333333333333333333333333", "golden")
	c, err := e.agent(clone, tok).Once(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.HostID == orig.HostID {
		t.Fatal("the clone was merged into the original")
	}
	h, _ := e.db.Fleet.Host(ctx, c.HostID)
	o, _ := e.db.Fleet.Host(ctx, orig.HostID)
	if h.CloneOf != orig.HostID || o.CloneOf != c.HostID {
		t.Errorf("clone flags: %q %q", h.CloneOf, o.CloneOf)
	}
	// A state dir copied to a machine with its own machine-id.
	other := host(t, "status-bookworm-minbase", "44444444444444444444444444444444", "other")
	os.MkdirAll(filepath.Join(other, "var/lib/patchbay"), 0o700)
	if err := os.CopyFS(filepath.Join(other, "var/lib/patchbay/agent"), os.DirFS(filepath.Join(root, "var/lib/patchbay/agent"))); err != nil {
		t.Fatal(err)
	}
	_, err = e.agent(other, "").Once(ctx)
	if api.CodeOf(err) != api.CodeMachineMismatch {
		t.Errorf("copied state dir: %v", err)
	}
	var se *api.StatusError
	if !errors.As(err, &se) {
		t.Errorf("not a server error: %v", err)
	}
}

// TestTrustByCA: with --ca the agent verifies the server's certificate
// chain and name; a server whose certificate the CA did not sign is
// refused.
func TestTrustByCA(t *testing.T) {
	e := newEnv(t)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.ts.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	hc, err := api.NewHTTPClient(ca, "")
	if err != nil {
		t.Fatal(err)
	}
	c := &api.Client{Base: e.ts.URL, HTTP: hc}
	if err := c.Do(context.Background(), http.MethodGet, "/healthz", nil, nil); err != nil {
		t.Errorf("trusted by CA: %v", err)
	}
	other := httptest.NewUnstartedServer(http.NotFoundHandler())
	cert, _, err := server.SelfSigned(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	other.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	other.StartTLS()
	defer other.Close()
	c.Base = other.URL
	if err := c.Do(context.Background(), http.MethodGet, "/healthz", nil, nil); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a server the CA did not sign: %v", err)
	}
	if _, err := api.NewHTTPClient(filepath.Join(t.TempDir(), "missing.pem"), ""); err == nil {
		t.Error("a missing CA file is accepted")
	}
	if _, err := api.TLSConfig("", "sha256:abc"); err == nil {
		t.Error("a short pin is accepted")
	}
}

// TestFirstCheckinBeforeChangelogs: on this host (a real Debian with apt
// and pending updates), the first check-in lists apt's updates at once
// without reading a changelog; the next one tries the changelogs — here
// against a mirror that does not answer — and the updates stay listed
// without CVEs, the reason no longer "not read yet".
func TestFirstCheckinBeforeChangelogs(t *testing.T) {
	if _, err := os.Stat("/usr/bin/apt-get"); err != nil {
		sharedtest.System(t, "this host has no apt")
	}
	probe := &pkgmgr.Apt{R: &pkgmgr.Runner{Root: "/"}}
	if ups, err := probe.Updates(context.Background()); err != nil || len(ups) == 0 {
		sharedtest.System(t, fmt.Sprintf("this host's apt offers no updates (%d, %v)", len(ups), err))
	}
	e := newEnv(t)
	ctx := context.Background()
	a := e.agent("/", e.enrollToken(1))
	a.StateDir = t.TempDir()
	var calls atomic.Int32
	a.Collector = agent.Collector{Root: "/", CacheDir: t.TempDir(), Version: "test",
		ChangelogClient: &http.Client{Transport: unreachable{&calls}}}

	start := time.Now()
	resp, pending, err := a.FirstCheckin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	ups, err := e.db.Fleet.Updates(ctx, resp.HostID)
	if err != nil {
		t.Fatal(err)
	}
	if pending == 0 || len(ups) != pending || calls.Load() != 0 {
		t.Fatalf("first check-in: %d pending, %d updates on the server, %d downloads tried; want all pending, none tried", pending, len(ups), calls.Load())
	}
	for _, u := range ups {
		if len(u.CVEs) != 0 || u.Candidate == "" || u.Origin == "" {
			t.Errorf("first check-in update %+v: want listed (candidate, origin) without CVEs", u)
		}
	}
	h, _ := e.db.Fleet.Host(ctx, resp.HostID)
	if !strings.Contains(h.Facts.Problem, "are not read yet") {
		t.Errorf("facts problem %q does not say the CVEs are still to come", h.Facts.Problem)
	}
	t.Logf("first check-in with %d updates in %s", pending, took)

	var seen atomic.Int32
	a.Collector.Progress = func(done, total int) { seen.Add(1) }
	if _, err := a.Once(ctx); err != nil {
		t.Fatal(err)
	}
	ups2, _ := e.db.Fleet.Updates(ctx, resp.HostID)
	if n, why := a.Unread(); len(ups2) != len(ups) || calls.Load() == 0 || seen.Load() == 0 || n == 0 || !strings.Contains(why, "the mirror is unreachable") {
		t.Errorf("second check-in offline: %d updates (want %d), %d downloads tried, %d progress calls", len(ups2), len(ups), calls.Load(), seen.Load())
	}
	h, _ = e.db.Fleet.Host(ctx, resp.HostID)
	if strings.Contains(h.Facts.Problem, "are not read yet") {
		t.Errorf("after the changelogs were tried the problem still says pending: %q", h.Facts.Problem)
	}
}

// unreachable is a mirror that never answers: every request fails.
type unreachable struct{ calls *atomic.Int32 }

func (u unreachable) RoundTrip(r *http.Request) (*http.Response, error) {
	u.calls.Add(1)
	return nil, fmt.Errorf("dial %s: connection refused (test: the mirror is unreachable)", r.URL.Host)
}
