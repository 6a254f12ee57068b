package web_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/api/policyapi"
	"github.com/patchbay/patchbay/api/rolloutapi"
	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/feeds"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/internal/rollouttest"
	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/inventory/collect"
	"github.com/patchbay/patchbay/job"
	"github.com/patchbay/patchbay/kinds"
	"github.com/patchbay/patchbay/patch"
	"github.com/patchbay/patchbay/rollout"
	"github.com/patchbay/patchbay/server"
	"github.com/patchbay/patchbay/store"
	"github.com/patchbay/patchbay/web"
)

// fastStrategy rolls out to staging, then production, two hosts at a
// time, without a bake or a window, promoted automatically: a rollout
// the test drives to its end in a few steps.
const fastStrategy = `apiVersion: patchbay/v1
kind: RolloutStrategy
metadata: {name: fast}
spec:
  rings:
    - {name: staging, hostGroup: staging, maxConcurrency: 2, errorThreshold: 0}
    - {name: prod, hostGroup: production, maxConcurrency: 2, errorThreshold: 0}
  reboot: never
  promote: automatic
`

// password is every test user's.
const password = "correct horse battery staple"

// fixture is a server with a fleet (three Debian hosts with the shared
// web-db inventory, findings from the shared Debian and KEV feeds, the
// updates that fix openssl, curl and glibc), the web UI in front of it
// on a TLS loopback server, and four people: alice and bob (operators),
// vera (viewer) and ada (admin).
type fixture struct {
	t     *testing.T
	db    *store.DB
	srv   *server.Server
	ui    *web.UI
	ts    *httptest.Server
	admin string // an admin API token
	hosts []*agentHost
	clock *clock
}

type agentHost struct {
	name, id, cred string
	key            ed25519.PublicKey
}

// clock is the UI's and the server's time, moved by the test.
type clock struct {
	mu sync.Mutex
	at time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.at
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at = c.at.Add(d)
}

var testJobKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))

func newFixture(t *testing.T, mod func(cfg *web.Config, url string)) *fixture {
	t.Helper()
	feedDir := sharedtest.Dir(t, "feeds/osv/Debian")
	kev := filepath.Join(sharedtest.Dir(t, "feeds/kev"), "known_exploited_vulnerabilities.json")
	root := sharedtest.DebianRoot(t, "status-bookworm-web-db")
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "patchbay.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := (&feeds.Importer{Store: db}).ImportPaths(ctx, []string{filepath.Join(feedDir, "all.zip"), kev}); err != nil {
		t.Fatal(err)
	}
	c := &clock{at: time.Now().UTC()}
	_, key, _ := ed25519.GenerateKey(nil)
	srv, err := server.New(server.Config{DB: db, Kinds: kinds.All(), ReplicaID: "test", AuditKey: key, JobKey: testJobKey, CheckpointDir: t.TempDir(), Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	var handler http.Handler
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	ts.StartTLS()
	t.Cleanup(ts.Close)
	cfg := web.Config{API: srv.Handler(), Users: db.Users, Now: c.now}
	if mod != nil {
		mod(&cfg, ts.URL)
	}
	ui, err := web.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	handler = ui.Handler()
	f := &fixture{t: t, db: db, srv: srv, ui: ui, ts: ts, clock: c}
	f.admin = f.token(auth.Admin)
	for _, u := range []struct {
		name string
		role auth.Role
	}{{"alice", auth.Operator}, {"bob", auth.Operator}, {"vera", auth.Viewer}, {"ada", auth.Admin}} {
		hash, err := auth.HashPassword(password)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Users.Add(ctx, auth.User{Name: u.name, Role: u.role, Source: auth.SourceLocal, Created: c.now()}, hash); err != nil {
			t.Fatal(err)
		}
	}
	policy := rollouttest.Documents("HostGroup/staging", "HostGroup/production", "ApprovalRule/production-two-people")
	f.apiDo("POST", "/policy/apply", policyapi.ApplyRequest{Files: []policyapi.PolicyFile{{Name: "rollout.yaml", Content: policy}, {Name: "fast.yaml", Content: fastStrategy}}}, nil)
	inv, err := collect.Collect(ctx, collect.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	enroll := f.enrollToken()
	for _, h := range []struct{ name, env string }{{"stg-1", "staging"}, {"prod-1", "prod"}, {"prod-2", "prod"}} {
		f.hosts = append(f.hosts, f.enroll(enroll, h.name, h.env, inv.Packages))
	}
	return f
}

func (f *fixture) token(role auth.Role) string {
	secret, id, hash, err := auth.NewSecret()
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.db.Tokens.Create(context.Background(), auth.Token{ID: id, Kind: auth.KindAPI, Role: role, Name: "test", Created: time.Now(), UsesLeft: -1}, hash); err != nil {
		f.t.Fatal(err)
	}
	return secret
}

func (f *fixture) enrollToken() string {
	secret, id, hash, err := auth.NewSecret()
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.db.Tokens.Create(context.Background(), auth.Token{ID: id, Kind: auth.KindEnrollment, Role: auth.Agent, Name: "test", Created: time.Now(), UsesLeft: -1}, hash); err != nil {
		f.t.Fatal(err)
	}
	return secret
}

// raw sends an API request with a bearer token through the UI's
// handler (as automation does) and returns the status and body.
func (f *fixture) raw(method, path, token string, body any) (int, []byte) {
	f.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			f.t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, f.ts.URL+path, r)
	if err != nil {
		f.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := f.ts.Client().Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// apiDo calls the API as admin, failing on a non-2xx answer.
func (f *fixture) apiDo(method, path string, body, out any) {
	f.t.Helper()
	f.apiAs(f.admin, method, path, body, out)
}

func (f *fixture) apiAs(token, method, path string, body, out any) {
	f.t.Helper()
	code, b := f.raw(method, api.Prefix+path, token, body)
	if code/100 != 2 {
		f.t.Fatalf("%s %s: %d %s", method, path, code, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			f.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
}

// enroll enrolls a host, checks in its inventory, then the security
// updates of openssl, curl and glibc that fix some of its findings.
func (f *fixture) enroll(tok, name, env string, pkgs []inventory.Package) *agentHost {
	f.t.Helper()
	facts := fleet.Facts{Hostname: name, MachineID: "m-" + name, OSID: "debian", OSVersion: "12", Ecosystem: "Debian:12", AgentVersion: "test",
		OSPretty: "Debian GNU/Linux 12 (bookworm)", Labels: map[string]string{"env": env, "exposure": "internet"}, RebootRequired: name == "prod-2"}
	var e api.EnrollResponse
	f.apiAs(tok, "POST", "/agent/enroll", api.EnrollRequest{Facts: facts}, &e)
	rep := func(full bool, ups []patch.Update) api.Report {
		r := api.Report{CollectedAt: time.Now().UTC(), Facts: facts, InventoryHash: fleet.InventoryHash(pkgs), UpdatesHash: fleet.UpdatesHash(ups)}
		if full {
			p := pkgs
			r.Inventory = &p
		}
		if ups != nil {
			r.Updates = &ups
		}
		return r
	}
	f.apiAs(e.Credential, "POST", "/agent/checkin", rep(true, []patch.Update{}), nil)
	var page fleet.FindingPage
	f.apiDo("GET", "/findings?limit=1000&host="+e.HostID, nil, &page)
	fixed := map[string]string{}
	for _, fd := range page.Findings {
		if slices.Contains([]string{"openssl", "curl", "glibc"}, fd.Package) && fd.Fixed != "" && fixed[fd.Package] < fd.Fixed {
			fixed[fd.Package] = fd.Fixed
		}
	}
	ups := []patch.Update{}
	for _, p := range pkgs {
		src := p.SourceName
		if src == "" {
			src = p.Name
		}
		if v, ok := fixed[src]; ok {
			ups = append(ups, patch.Update{Ecosystem: "Debian:12", Name: p.Name, SourceName: src, SourceVersion: p.SourceVersion, Installed: p.Version,
				Candidate: v, Origin: "bookworm-security", Pocket: "security", CVEs: []string{}, Types: []patch.Type{patch.Security}, Cycle: "system"})
		}
	}
	if len(ups) == 0 {
		f.t.Fatalf("%s: no update fixes openssl, curl or glibc", name)
	}
	f.apiAs(e.Credential, "POST", "/agent/checkin", rep(false, ups), nil)
	k, err := base64.StdEncoding.DecodeString(e.JobKey)
	if err != nil {
		f.t.Fatal(err)
	}
	return &agentHost{name: name, id: e.HostID, cred: e.Credential, key: k}
}

// createPlan plans every security patch with the fast strategy, as an
// operator through the API.
func (f *fixture) createPlan(desc string) *rollout.Plan {
	f.t.Helper()
	var st rolloutapi.PlanStatus
	f.apiDo("POST", "/plans", rollout.PlanSpec{Description: desc, Strategy: "fast", Selector: rollout.Selector{Types: []patch.Type{patch.Security}}}, &st)
	if st.Plan.State != rollout.AwaitingApproval || st.Plan.Required != 2 {
		f.t.Fatalf("plan %s: %s, %d approvers; want awaiting two approvals", st.Plan.ID, st.Plan.State, st.Plan.Required)
	}
	return st.Plan
}

// step is one round of the fleet: every agent polls for jobs (which
// marks it active) and runs the one it got, succeeding; then the leader
// steps the rollouts. It returns how many jobs ran.
func (f *fixture) step(ctx context.Context) int {
	f.t.Helper()
	ran := 0
	for _, h := range f.hosts {
		var jr api.JobsResponse
		f.apiAs(h.cred, "GET", "/agent/jobs?wait=0", nil, &jr)
		for _, sj := range jr.Jobs {
			m, err := job.Verify(sj, h.key, h.id, f.clock.now())
			if err != nil {
				f.t.Fatalf("%s: job does not verify: %v", h.name, err)
			}
			now := f.clock.now()
			f.apiAs(h.cred, "POST", "/agent/jobs/result", job.Result{JobID: m.JobID, Attempt: m.Attempt, Outcome: job.Succeeded, Started: now, Finished: now}, nil)
			ran++
		}
	}
	if err := f.srv.FlushCheckins(ctx); err != nil {
		f.t.Fatal(err)
	}
	if err := f.srv.StepRollouts(ctx, rollout.Fence{}); err != nil {
		f.t.Fatal(err)
	}
	return ran
}

func (f *fixture) planStatus(id string) rolloutapi.PlanStatus {
	f.t.Helper()
	var st rolloutapi.PlanStatus
	f.apiDo("GET", "/plans/"+id+"?hosts=1", nil, &st)
	return st
}

// person is a browser-less client of the UI: a cookie jar over TLS.
type person struct {
	f    *fixture
	name string
	c    *http.Client
}

func (f *fixture) person(name string) *person {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &person{f: f, name: name, c: c}
}

// get fetches a page; it returns the status, the Location and the body.
func (p *person) get(path string) (int, string, string) {
	p.f.t.Helper()
	resp, err := p.c.Get(p.f.ts.URL + path)
	if err != nil {
		p.f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

func (p *person) post(path string, form url.Values, hdr ...string) (int, string, string) {
	p.f.t.Helper()
	req, err := http.NewRequest("POST", p.f.ts.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		p.f.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := p.c.Do(req)
	if err != nil {
		p.f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrfOf is the CSRF token of the first form of a page.
func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF field in the page:\n%s", page)
	}
	return m[1]
}

// login logs the person in with the password, checking the redirect.
func (p *person) login(pw string) (int, string) {
	p.f.t.Helper()
	_, _, page := p.get("/login")
	code, loc, body := p.post("/login", url.Values{"csrf": {csrfOf(p.f.t, page)}, "name": {p.name}, "password": {pw}, "next": {"/"}})
	if code == http.StatusSeeOther {
		return code, loc
	}
	return code, body
}
