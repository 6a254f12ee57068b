package server_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/audit"
	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/feeds"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/internal/pgtest"
	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/inventory/collect"
	"github.com/patchbay/patchbay/kinds"
	"github.com/patchbay/patchbay/match"
	"github.com/patchbay/patchbay/patch"
	"github.com/patchbay/patchbay/server"
	"github.com/patchbay/patchbay/store"
)

// fixture is a server on a fresh database, served over loopback.
type fixture struct {
	t   *testing.T
	db  *store.DB
	srv *server.Server
	url string
	cpd string
	key ed25519.PrivateKey
	dsn string // the database's DSN (a SQLite file's path)
}

// testJobKey signs the jobs of every test server: replicas of one
// database share it, as they share one --job-key file.
var testJobKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

func newFixture(t *testing.T, backend string, mod func(*server.Config)) *fixture {
	t.Helper()
	ctx := context.Background()
	dsn := filepath.Join(t.TempDir(), "patchbay.db")
	if backend == "postgres" {
		dsn = pgtest.Fresh(t)
	}
	db, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	_, key, _ := ed25519.GenerateKey(nil)
	cfg := server.Config{DB: db, Kinds: kinds.All(), ReplicaID: "test", AuditKey: key, JobKey: testJobKey, CheckpointDir: t.TempDir(), MaxBody: 4 << 20}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &fixture{t: t, db: db, srv: srv, url: ts.URL, cpd: cfg.CheckpointDir, key: key, dsn: dsn}
}

// chapter runs one step of a story test as the subtest name, the fixture
// reporting to it meanwhile. It returns false when the step stopped short
// (t.Fatal, t.FailNow): the later steps build on what it leaves, and the
// caller returns. A step that only reports errors (t.Error) lets the story
// go on.
func (f *fixture) chapter(name string, step func(t *testing.T)) bool {
	parent := f.t
	finished := false
	parent.Run(name, func(t *testing.T) {
		f.t = t
		defer func() { f.t = parent }()
		step(t)
		finished = true
	})
	return finished
}

// token makes a credential directly in the store.
func (f *fixture) token(kind auth.Kind, role auth.Role, uses int, expires time.Time) string {
	f.t.Helper()
	secret, id, hash, err := auth.NewSecret()
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.db.Tokens.Create(context.Background(), auth.Token{ID: id, Kind: kind, Role: role, Name: "test", Created: time.Now(), Expires: expires, UsesLeft: uses}, hash); err != nil {
		f.t.Fatal(err)
	}
	return secret
}

func (f *fixture) api(role auth.Role) string { return f.token(auth.KindAPI, role, -1, time.Time{}) }

// do sends a request; body is JSON-encoded unless it is []byte.
func (f *fixture) do(method, path, token string, body any, hdr ...string) (int, []byte) {
	f.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			f.t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, f.url+path, r)
	if err != nil {
		f.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func (f *fixture) decode(b []byte, v any) {
	f.t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		f.t.Fatalf("%v: %s", err, b)
	}
}

func errOf(b []byte) api.Error {
	var e api.Error
	json.Unmarshal(b, &e)
	return e
}

func factsOf(host, machine string) fleet.Facts {
	return fleet.Facts{Hostname: host, MachineID: machine, OSID: "debian", OSVersion: "12", Ecosystem: "Debian:12", AgentVersion: "test"}
}

// enroll enrolls a host and returns its id and credential.
func (f *fixture) enroll(tok string, facts fleet.Facts) api.EnrollResponse {
	f.t.Helper()
	code, b := f.do("POST", api.Prefix+"/agent/enroll", tok, api.EnrollRequest{Facts: facts})
	if code != http.StatusCreated {
		f.t.Fatalf("enroll %s: %d %s", facts.Hostname, code, b)
	}
	var r api.EnrollResponse
	f.decode(b, &r)
	return r
}

func report(facts fleet.Facts, pkgs []inventory.Package, full bool) api.Report {
	r := api.Report{CollectedAt: time.Now().UTC(), Facts: facts, InventoryHash: fleet.InventoryHash(pkgs), UpdatesHash: fleet.UpdatesHash(nil)}
	if full {
		p, u := pkgs, []patch.Update{}
		r.Inventory, r.Updates = &p, &u
	}
	return r
}

// TestEveryRouteEveryRole walks every route with every kind of
// credential and checks it is let through exactly when the route's role
// allows it.
func TestEveryRouteEveryRole(t *testing.T) {
	f := newFixture(t, "sqlite", nil)
	enrollTok := f.token(auth.KindEnrollment, auth.Agent, -1, time.Time{})
	host := f.enroll(enrollTok, factsOf("h1", "m1"))
	creds := map[string]string{
		"none": "", "viewer": f.api(auth.Viewer), "operator": f.api(auth.Operator), "admin": f.api(auth.Admin),
		"agent": host.Credential, "enrollment": enrollTok, "unknown": "pb_not-a-real-token",
	}
	allowed := func(need auth.Role, who string) bool {
		switch {
		case need == "":
			return true
		case who == "none" || who == "unknown":
			return false
		case need == "enrollment":
			return who == "enrollment"
		case who == "enrollment":
			return false
		}
		return auth.Role(who).Allows(need)
	}
	n := 0
	for _, rt := range f.srv.Routes() {
		path := strings.ReplaceAll(rt.Pattern, "{id}", "no-such-id")
		for who, tok := range creds {
			code, body := f.do(rt.Method, path, tok, []byte("{}"))
			denied := code == http.StatusUnauthorized || code == http.StatusForbidden
			if want := allowed(rt.Need, who); want == denied {
				t.Errorf("%s %s as %s: %d %s (allowed: %v)", rt.Method, rt.Pattern, who, code, body, want)
			}
			if denied && (who == "none" || who == "unknown") && code != http.StatusUnauthorized {
				t.Errorf("%s %s as %s: %d, want 401", rt.Method, rt.Pattern, who, code)
			}
			if denied && who != "none" && who != "unknown" && code != http.StatusForbidden {
				t.Errorf("%s %s as %s: %d, want 403 for a valid credential of the wrong role", rt.Method, rt.Pattern, who, code)
			}
			n++
		}
	}
	if n < 7*19 {
		t.Errorf("only %d route × credential pairs", n)
	}
}

// TestOpenAPIDocumentsEveryRoute: every route is in the OpenAPI
// document, with its role, and every documented operation is served.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	f := newFixture(t, "sqlite", nil)
	code, b := f.do("GET", api.Prefix+"/openapi.json", "", nil)
	if code != 200 {
		t.Fatalf("%d", code)
	}
	var doc struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
	}
	f.decode(b, &doc)
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q", doc.OpenAPI)
	}
	documented := map[string]string{}
	for p, ops := range doc.Paths {
		for m, op := range ops {
			role, _ := op["x-role"].(string)
			documented[strings.ToUpper(m)+" "+p] = role
		}
	}
	served := map[string]bool{}
	for _, rt := range f.srv.Routes() {
		k := rt.Method + " " + rt.Pattern
		served[k] = true
		role, ok := documented[k]
		if !ok {
			t.Errorf("route %s is not in the OpenAPI document", k)
		} else if role != string(rt.Need) {
			t.Errorf("route %s: documented role %q, served with %q", k, role, rt.Need)
		}
	}
	for k := range documented {
		if !served[k] {
			t.Errorf("documented %s is not served", k)
		}
		method, path, _ := strings.Cut(k, " ")
		code, body := f.do(method, strings.ReplaceAll(path, "{id}", "x"), "", nil)
		if code == http.StatusMethodNotAllowed || strings.Contains(string(body), "no such route") {
			t.Errorf("documented %s: %d %s", k, code, body)
		}
	}
}

func debianFeed(t *testing.T) string {
	return filepath.Join(sharedtest.Dir(t, "feeds/osv/Debian"), "all.zip")
}

func webDB(t *testing.T) []inventory.Package {
	inv, err := collect.Collect(context.Background(), collect.Options{Root: sharedtest.DebianRoot(t, "status-bookworm-web-db")})
	if err != nil {
		t.Fatal(err)
	}
	return inv.Packages
}

func TestFleetSQLite(t *testing.T)   { testFleet(t, "sqlite") }
func TestFleetPostgres(t *testing.T) { testFleet(t, "postgres") }

// testFleet runs a host's life through the API: enrollment (with usage
// limits, expiry and clones), check-ins (full, unchanged, refused), an
// upgrade that remediates findings, queries, labels, revocation and the
// audit chain.
func testFleet(t *testing.T, backend string) {
	feed := debianFeed(t)
	pkgs := webDB(t)
	f := newFixture(t, backend, nil)
	ctx := context.Background()
	if _, err := (&feeds.Importer{Store: f.db}).ImportPaths(ctx, []string{feed}); err != nil {
		t.Fatal(err)
	}
	viewer, operator, admin := f.api(auth.Viewer), f.api(auth.Operator), f.api(auth.Admin)

	// Enrollment: two uses, then refused; expired tokens refused.
	enrollTok := f.token(auth.KindEnrollment, auth.Agent, 2, time.Now().Add(time.Hour))
	factsA := factsOf("web-1", "machine-a")
	a := f.enroll(enrollTok, factsA)
	b := f.enroll(enrollTok, factsOf("web-1-copy", "machine-a"))
	if b.CloneOf != a.HostID || a.CloneOf != "" {
		t.Errorf("clone flags: a %q, b %q", a.CloneOf, b.CloneOf)
	}
	if code, _ := f.do("POST", api.Prefix+"/agent/enroll", enrollTok, api.EnrollRequest{Facts: factsOf("c", "machine-c")}); code != 401 {
		t.Errorf("third enrollment with a two-use token: %d", code)
	}
	expired := f.token(auth.KindEnrollment, auth.Agent, 5, time.Now().Add(-time.Minute))
	if code, _ := f.do("POST", api.Prefix+"/agent/enroll", expired, api.EnrollRequest{Facts: factsOf("d", "machine-d")}); code != 401 {
		t.Errorf("expired enrollment token: %d", code)
	}
	var ha fleet.HostSummary
	_, body := f.do("GET", api.Prefix+"/hosts/"+a.HostID, viewer, nil)
	f.decode(body, &ha)
	if ha.CloneOf != b.HostID {
		t.Errorf("the first host is not flagged as a clone of the second: %q", ha.CloneOf)
	}

	// First check-in without the inventory: the server asks for it.
	code, body := f.do("POST", api.Prefix+"/agent/checkin", a.Credential, report(factsA, pkgs, false))
	if code != 409 || errOf(body).Code != api.CodeInventoryRequired {
		t.Fatalf("hash-only first check-in: %d %s", code, body)
	}
	// In full, gzip-compressed as agents send it.
	var zbuf bytes.Buffer
	zw := gzip.NewWriter(&zbuf)
	json.NewEncoder(zw).Encode(report(factsA, pkgs, true))
	zw.Close()
	code, body = f.do("POST", api.Prefix+"/agent/checkin", a.Credential, zbuf.Bytes(), "Content-Encoding", "gzip")
	var cr api.CheckinResponse
	f.decode(body, &cr)
	if code != 200 || cr.Inventory != "stored" || cr.Open == 0 || cr.Opened != cr.Open {
		t.Fatalf("full check-in: %d %s", code, body)
	}
	opened := cr.Open
	// Unchanged: the hash is enough, and last_seen moves.
	before, _ := f.db.Fleet.Host(ctx, a.HostID)
	time.Sleep(5 * time.Millisecond)
	code, body = f.do("POST", api.Prefix+"/agent/checkin", a.Credential, report(factsA, pkgs, false))
	f.decode(body, &cr)
	if code != 200 || cr.Inventory != "unchanged" || cr.Open != opened {
		t.Fatalf("unchanged check-in: %d %s", code, body)
	}
	if err := f.srv.FlushCheckins(ctx); err != nil {
		t.Fatal(err)
	}
	after, _ := f.db.Fleet.Host(ctx, a.HostID)
	if !after.LastSeen.After(before.LastSeen) {
		t.Errorf("last seen %v → %v", before.LastSeen, after.LastSeen)
	}

	// Bad inventories are refused whole: the stored one stays.
	bad := append([]inventory.Package(nil), pkgs...)
	bad[3].Version = ""
	rep := report(factsA, bad, true)
	code, body = f.do("POST", api.Prefix+"/agent/checkin", a.Credential, rep)
	if code != 400 || errOf(body).Field != "inventory[3].version" || !strings.Contains(errOf(body).Error, "missing") {
		t.Errorf("invalid package: %d %s", code, body)
	}
	rep = report(factsA, pkgs[:10], true)
	rep.InventoryHash = fleet.InventoryHash(pkgs[:11])
	code, body = f.do("POST", api.Prefix+"/agent/checkin", a.Credential, rep)
	if code != 400 || errOf(body).Field != "inventory_hash" {
		t.Errorf("hash mismatch: %d %s", code, body)
	}
	if inv, _ := f.db.Fleet.Inventory(ctx, a.HostID); len(inv) != len(pkgs) {
		t.Errorf("a refused ingest changed the inventory: %d packages, want %d", len(inv), len(pkgs))
	}
	code, body = f.do("POST", api.Prefix+"/agent/checkin", a.Credential, []byte(`{"facts": {"hostname": "web-1", "machine_id": "machine-a", "uptime_seconds": "long"}}`))
	if code != 400 || errOf(body).Field != "facts.uptime_seconds" {
		t.Errorf("wrong type: %d %s", code, body)
	}
	code, body = f.do("POST", api.Prefix+"/agent/checkin", a.Credential, []byte(`{"facts": {"hostname": `))
	if code != 400 || !strings.Contains(errOf(body).Error, "JSON") {
		t.Errorf("truncated JSON: %d %s", code, body)
	}
	code, body = f.do("POST", api.Prefix+"/agent/checkin", a.Credential, api.Report{Facts: fleet.Facts{MachineID: "machine-a"}})
	if code != 400 || errOf(body).Field != "facts.hostname" {
		t.Errorf("missing hostname: %d %s", code, body)
	}
	big := bytes.Repeat([]byte(" "), 5<<20)
	if code, body = f.do("POST", api.Prefix+"/agent/checkin", a.Credential, big); code != 413 {
		t.Errorf("5 MiB body over a 4 MiB limit: %d %s", code, body)
	}
	var bomb bytes.Buffer
	zw = gzip.NewWriter(&bomb)
	zw.Write(bytes.Repeat([]byte(" "), 16<<20))
	zw.Close()
	if code, body = f.do("POST", api.Prefix+"/agent/checkin", a.Credential, bomb.Bytes(), "Content-Encoding", "gzip"); code != 413 {
		t.Errorf("gzip bomb (%d bytes → 16 MiB): %d %s", bomb.Len(), code, body)
	}
	// A credential presented with another machine-id is refused.
	code, body = f.do("POST", api.Prefix+"/agent/checkin", a.Credential, report(factsOf("web-1", "machine-z"), pkgs, false))
	if code != 409 || errOf(body).Code != api.CodeMachineMismatch {
		t.Errorf("machine mismatch: %d %s", code, body)
	}

	// Upgrade openssl past every fix, in a report dated an hour ago —
	// before the host's last check-in: it is applied at that check-in's
	// time (a report never rewrites what came after it).
	up := append([]inventory.Package(nil), pkgs...)
	for i := range up {
		if up[i].SourceName == "openssl" || up[i].Name == "openssl" {
			up[i].Version, up[i].SourceVersion = "9.9.9-1", "9.9.9-1"
		}
	}
	rep = report(factsA, up, true)
	rep.CollectedAt = time.Now().UTC().Add(-time.Hour)
	lastSeen, _ := f.db.Fleet.Host(ctx, a.HostID)
	code, body = f.do("POST", api.Prefix+"/agent/checkin", a.Credential, rep)
	f.decode(body, &cr)
	if code != 200 || cr.Closed == 0 || cr.Opened != 0 || cr.Open != opened-cr.Closed {
		t.Fatalf("upgrade: %d %s", code, body)
	}
	var page fleet.FindingPage
	_, body = f.do("GET", api.Prefix+"/findings?status=remediated&package=openssl&host="+a.HostID, viewer, nil)
	f.decode(body, &page)
	if len(page.Findings) != cr.Closed {
		t.Errorf("%d remediated openssl findings listed, %d closed", len(page.Findings), cr.Closed)
	}
	for _, x := range page.Findings {
		if !x.RemediatedAt.Equal(lastSeen.LastSeen) {
			t.Errorf("%s remediated at %v, want the last check-in's time %v", x.Vulnerability, x.RemediatedAt, lastSeen.LastSeen)
		}
	}

	// Labels (operator), then queries by label, OS, priority; pages.
	code, body = f.do("PUT", api.Prefix+"/hosts/"+a.HostID+"/labels", operator, api.Labels{Labels: map[string]string{"env": "prod", "team": "web"}})
	if code != 200 {
		t.Fatalf("labels: %d %s", code, body)
	}
	if code, body = f.do("PUT", api.Prefix+"/hosts/"+a.HostID+"/labels", operator, api.Labels{Labels: map[string]string{"bad key": "x"}}); code != 400 || errOf(body).Field != "labels.bad key" {
		t.Errorf("bad label: %d %s", code, body)
	}
	var hl api.HostList
	_, body = f.do("GET", api.Prefix+"/hosts?label=env=prod&os=Debian", viewer, nil)
	f.decode(body, &hl)
	if len(hl.Hosts) != 1 || hl.Hosts[0].ID != a.HostID || hl.Hosts[0].OpenTotal() != cr.Open {
		t.Errorf("hosts by label: %+v", hl.Hosts)
	}
	_, body = f.do("GET", api.Prefix+"/hosts?clones=true", viewer, nil)
	f.decode(body, &hl)
	if len(hl.Hosts) != 2 {
		t.Errorf("%d clones listed, want 2", len(hl.Hosts))
	}
	_, body = f.do("GET", api.Prefix+"/hosts?min_open=1", viewer, nil)
	f.decode(body, &hl)
	if len(hl.Hosts) != 1 {
		t.Errorf("%d hosts with open findings, want 1", len(hl.Hosts))
	}
	if code, body = f.do("GET", api.Prefix+"/hosts?seen_after=yesterday", viewer, nil); code != 400 || errOf(body).Field != "query.seen_after" {
		t.Errorf("bad time: %d %s", code, body)
	}
	// Pages of hosts: limit after offset, sorted, with the total; without
	// limit and offset every host and no total.
	var every api.HostList
	_, body = f.do("GET", api.Prefix+"/hosts", viewer, nil)
	f.decode(body, &every)
	if every.Total != nil || len(every.Hosts) < 2 {
		t.Fatalf("every host: %s", body)
	}
	var paged []fleet.HostSummary
	for off := 0; ; off++ {
		var pg api.HostList
		_, body = f.do("GET", api.Prefix+"/hosts?sort=open&limit=1&offset="+strconv.Itoa(off), viewer, nil)
		f.decode(body, &pg)
		if pg.Total == nil || *pg.Total != len(every.Hosts) || pg.Offset != off {
			t.Fatalf("page at %d: %s", off, body)
		}
		if len(pg.Hosts) == 0 {
			break
		}
		paged = append(paged, pg.Hosts...)
	}
	if len(paged) != len(every.Hosts) || paged[0].ID != a.HostID {
		t.Errorf("pages of one by open findings: %d hosts, first %s; want %d, first %s (the one with open findings)", len(paged), paged[0].ID, len(every.Hosts), a.HostID)
	}
	for i := 1; i < len(paged); i++ {
		if paged[i].OpenTotal() > paged[i-1].OpenTotal() {
			t.Errorf("by open findings: %s (%d) after %s (%d)", paged[i].ID, paged[i].OpenTotal(), paged[i-1].ID, paged[i-1].OpenTotal())
		}
	}
	for q, field := range map[string]string{"sort=colour": "query.sort", "limit=5000": "query.limit", "offset=-1": "query.offset", "reboot=maybe": "query.reboot"} {
		if code, body = f.do("GET", api.Prefix+"/hosts?"+q, viewer, nil); code != 400 || errOf(body).Field != field {
			t.Errorf("hosts?%s: %d %s, want a 400 naming %s", q, code, body, field)
		}
	}
	var all fleet.FindingPage
	_, body = f.do("GET", api.Prefix+"/findings?label=env=prod&limit=1000", viewer, nil)
	f.decode(body, &all)
	if len(all.Findings) != cr.Open || all.Next != "" {
		t.Fatalf("%d open findings by label (next %q), want %d", len(all.Findings), all.Next, cr.Open)
	}
	for _, sortBy := range []string{"priority", "due", "first_seen", "-first_seen"} {
		seen := map[int64]bool{}
		cursor := ""
		pages := 0
		for {
			var p fleet.FindingPage
			code, body := f.do("GET", api.Prefix+"/findings?ecosystem=Debian&limit=37&sort="+sortBy+"&cursor="+cursor, viewer, nil)
			if code != 200 {
				t.Fatalf("%d %s", code, body)
			}
			f.decode(body, &p)
			for _, x := range p.Findings {
				if seen[x.ID] {
					t.Fatalf("sort %s: finding %d on two pages", sortBy, x.ID)
				}
				seen[x.ID] = true
			}
			pages++
			if p.Next == "" {
				break
			}
			cursor = p.Next
		}
		if len(seen) != cr.Open || pages != (cr.Open+36)/37 {
			t.Errorf("sort %s: %d findings in %d pages, want %d", sortBy, len(seen), pages, cr.Open)
		}
	}
	if code, body = f.do("GET", api.Prefix+"/findings?cursor=garbage", viewer, nil); code != 400 || errOf(body).Field != "query.cursor" {
		t.Errorf("bad cursor: %d %s", code, body)
	}
	if code, body = f.do("GET", api.Prefix+"/findings?priority=P9", viewer, nil); code != 400 || errOf(body).Field != "query.priority" {
		t.Errorf("bad priority: %d %s", code, body)
	}
	// Vulnerabilities, aggregated.
	var vl api.VulnList
	_, body = f.do("GET", api.Prefix+"/vulns", viewer, nil)
	f.decode(body, &vl)
	if len(vl.Vulnerabilities) == 0 {
		t.Fatal("no vulnerabilities")
	}
	v0 := vl.Vulnerabilities[0]
	var v fleet.Vulnerability
	code, body = f.do("GET", api.Prefix+"/vulns/"+v0.ID, viewer, nil)
	f.decode(body, &v)
	if code != 200 || v.Hosts != 1 || len(v.HostIDs) != 1 || v.HostIDs[0] != a.HostID || len(v.Packages) == 0 ||
		len(v.AffectedHosts) != 1 || v.AffectedHosts[0] != (fleet.HostRef{ID: a.HostID, Hostname: "web-1"}) {
		t.Errorf("vuln %s: %d %s", v0.ID, code, body)
	}
	if code, _ := f.do("GET", api.Prefix+"/vulns/CVE-1999-0000", viewer, nil); code != 404 {
		t.Errorf("unknown vuln: %d", code)
	}
	// Host detail: packages, findings (open and remediated), updates.
	var d fleet.HostDetail
	_, body = f.do("GET", api.Prefix+"/hosts/"+a.HostID, viewer, nil)
	f.decode(body, &d)
	if len(d.Packages) != len(up) || len(d.Findings) != opened || d.Updates == nil {
		t.Errorf("detail: %d packages, %d findings (want %d, %d)", len(d.Packages), len(d.Findings), len(up), opened)
	}

	// Revocation: the next check-in is refused.
	if code, body = f.do("POST", api.Prefix+"/hosts/"+a.HostID+"/revoke", admin, nil); code != 200 {
		t.Fatalf("revoke: %d %s", code, body)
	}
	if code, _ = f.do("POST", api.Prefix+"/agent/checkin", a.Credential, report(factsA, up, false)); code != 401 {
		t.Errorf("check-in with a revoked credential: %d", code)
	}
	// Every state change is in an intact audit chain.
	es, err := f.db.Audit.Entries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := audit.Verify(es, nil); err != nil {
		t.Error(err)
	}
	var actions []string
	for _, e := range es {
		actions = append(actions, e.Action)
	}
	sort.Strings(actions)
	if got := strings.Join(actions, ","); got != "host.enroll,host.enroll,host.labels,host.revoke" {
		t.Errorf("audit actions %s", got)
	}
}

// TestRefreshRematchesAndFences: a new advisory imported by a refresh
// opens a finding on the one host with the package, through the
// incremental rematch; the rematch of a stale leader is refused.
func TestRefreshRematchesAndFencesSQLite(t *testing.T) { testRefreshRematchesAndFences(t, "sqlite") }
func TestRefreshRematchesAndFencesPostgres(t *testing.T) {
	testRefreshRematchesAndFences(t, "postgres")
}

func testRefreshRematchesAndFences(t *testing.T, backend string) {
	feed := debianFeed(t)
	pkgs := webDB(t)
	dir := t.TempDir()
	f := newFixture(t, backend, func(c *server.Config) { c.Feeds = server.FeedSource{Paths: []string{feed, dir}} })
	ctx := context.Background()
	if _, err := f.srv.RefreshFeeds(ctx, fleet.Fence{}); err != nil {
		t.Fatal(err)
	}
	tok := f.token(auth.KindEnrollment, auth.Agent, -1, time.Time{})
	a := f.enroll(tok, factsOf("web", "m-web"))
	base := f.enroll(tok, factsOf("base", "m-base"))
	if code, body := f.do("POST", api.Prefix+"/agent/checkin", a.Credential, report(factsOf("web", "m-web"), pkgs, true)); code != 200 {
		t.Fatal(code, string(body))
	}
	minimal := []inventory.Package{{Ecosystem: "Debian:12", Name: "bash", Version: "5.2.15-2+b2", SourceName: "bash", SourceVersion: "5.2.15-2", Location: "/var/lib/dpkg/status"}}
	if code, body := f.do("POST", api.Prefix+"/agent/checkin", base.Credential, report(factsOf("base", "m-base"), minimal, true)); code != 200 {
		t.Fatal(code, string(body))
	}
	nginx := ""
	for _, p := range pkgs {
		if p.SourceName == "nginx" || p.Name == "nginx" {
			nginx = p.Name
		}
	}
	if nginx == "" {
		t.Fatal("the web-db fixture has no nginx")
	}
	os.WriteFile(filepath.Join(dir, "PB-2026-0001.json"), []byte(`{"id": "PB-2026-0001", "modified": "2026-11-22T10:00:00Z",
		"aliases": ["CVE-2026-99999"], "affected": [{"package": {"ecosystem": "Debian:12", "name": "nginx"},
		"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "9.9"}]}]}]}`), 0o644)
	operator := f.api(auth.Operator)
	code, body := f.do("POST", api.Prefix+"/feeds/refresh", operator, nil)
	var rr server.RefreshResult
	f.decode(body, &rr)
	if code != 200 || rr.Summary.Added != 1 || rr.Rematch.Hosts != 1 || rr.Rematch.Opened != 1 {
		t.Fatalf("refresh: %d %s", code, body)
	}
	var page fleet.FindingPage
	_, body = f.do("GET", api.Prefix+"/findings?vuln=CVE-2026-99999", operator, nil)
	f.decode(body, &page)
	if len(page.Findings) != 1 || page.Findings[0].HostID != a.HostID || page.Findings[0].Fixed != "9.9" {
		t.Errorf("new advisory's findings: %s", body)
	}
	// Vulnerability ids are matched without regard to case.
	_, body = f.do("GET", api.Prefix+"/findings?vuln=cve-2026-99999", operator, nil)
	f.decode(body, &page)
	if len(page.Findings) != 1 || page.Findings[0].Vulnerability != "CVE-2026-99999" {
		t.Errorf("findings?vuln= in lower case: %s", body)
	}
	var v fleet.Vulnerability
	code, body = f.do("GET", api.Prefix+"/vulns/cve-2026-99999", operator, nil)
	f.decode(body, &v)
	if code != 200 || v.ID != "CVE-2026-99999" || v.Hosts != 1 {
		t.Errorf("GET vulns/ in lower case: %d %s", code, body)
	}

	// Fencing: a leader that lost its lease cannot write.
	now := time.Now()
	l1, err := f.db.Leases.Acquire(ctx, server.LeaseName, "old", now, time.Second)
	if err != nil || l1.Holder != "old" {
		t.Fatal(l1, err)
	}
	l2, err := f.db.Leases.Acquire(ctx, server.LeaseName, "new", now.Add(2*time.Second), time.Minute)
	if err != nil || l2.Holder != "new" || l2.Term <= l1.Term {
		t.Fatal(l2, err)
	}
	os.WriteFile(filepath.Join(dir, "PB-2026-0001.json"), []byte(`{"id": "PB-2026-0001", "modified": "2026-11-22T11:00:00Z",
		"withdrawn": "2026-11-22T11:00:00Z", "affected": [{"package": {"ecosystem": "Debian:12", "name": "nginx"},
		"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "9.9"}]}]}]}`), 0o644)
	_, err = f.srv.RefreshFeeds(ctx, fleet.Fence{Lease: server.LeaseName, Term: l1.Term})
	if err == nil || !strings.Contains(err.Error(), "stale leader") {
		t.Errorf("stale leader's rematch: %v", err)
	}
	_, body = f.do("GET", api.Prefix+"/findings?vuln=CVE-2026-99999", operator, nil)
	f.decode(body, &page)
	if len(page.Findings) != 1 {
		t.Errorf("a fenced rematch changed findings: %s", body)
	}
	// The current leader's goes through: the withdrawn advisory's finding
	// closes (the import itself was already applied).
	if _, err := f.srv.Rematch(ctx, []match.Key{{Ecosystem: "Debian:12", Name: "nginx"}}, fleet.Fence{Lease: server.LeaseName, Term: l2.Term}); err != nil {
		t.Fatal(err)
	}
	_, body = f.do("GET", api.Prefix+"/findings?vuln=CVE-2026-99999", operator, nil)
	f.decode(body, &page)
	if len(page.Findings) != 0 {
		t.Errorf("withdrawn advisory still open: %s", body)
	}
}

// TestCheckpointAndHealth: a signed checkpoint is exported outside the
// database and catches a truncated tail; health, readiness and metrics
// answer.
func TestCheckpointAndHealth(t *testing.T) {
	f := newFixture(t, "sqlite", nil)
	ctx := context.Background()
	admin := f.api(auth.Admin)
	for i := 0; i < 3; i++ {
		if code, body := f.do("POST", api.Prefix+"/tokens", admin, api.TokenRequest{Role: auth.Viewer, Name: fmt.Sprint(i)}); code != 201 {
			t.Fatal(code, string(body))
		}
	}
	if code, body := f.do("POST", api.Prefix+"/tokens", admin, []byte(`{"role": "viewer", "extra": 1}`)); code != 400 {
		t.Errorf("unknown field: %d %s", code, body)
	}
	cp, err := f.srv.Checkpoint(ctx)
	if err != nil || cp.Seq != 3 {
		t.Fatal(cp, err)
	}
	b, err := os.ReadFile(filepath.Join(f.cpd, "audit-checkpoint.json"))
	if err != nil {
		t.Fatal(err)
	}
	var onDisk audit.Checkpoint
	json.Unmarshal(b, &onDisk)
	if err := onDisk.VerifySignature(f.key.Public().(ed25519.PublicKey)); err != nil {
		t.Error(err)
	}
	es, _ := f.db.Audit.Entries(ctx)
	if err := audit.Verify(es[:2], &onDisk); err == nil {
		t.Error("a truncated chain verifies against the checkpoint")
	}
	if err := audit.Verify(es, &onDisk); err != nil {
		t.Error(err)
	}
	// Audit export over the API: JSON Lines.
	code, body := f.do("GET", api.Prefix+"/audit", admin, nil)
	if code != 200 || strings.Count(string(body), "\n") != 3 {
		t.Errorf("audit export: %d %q", code, body)
	}
	// The signing key and a checkpoint of the head on demand, for clients
	// to verify themselves.
	var ak api.AuditKey
	code, body = f.do("GET", api.Prefix+"/audit/key", admin, nil)
	f.decode(body, &ak)
	if code != 200 || ak.Algorithm != "ed25519" || ak.PublicKey != hex.EncodeToString(f.key.Public().(ed25519.PublicKey)) {
		t.Errorf("audit key: %d %s", code, body)
	}
	if code, body := f.do("GET", api.Prefix+"/audit/key", f.api(auth.Operator), nil); code != 403 {
		t.Errorf("audit key as operator: %d %s", code, body)
	}
	var now audit.Checkpoint
	code, body = f.do("POST", api.Prefix+"/audit/checkpoint", admin, nil)
	f.decode(body, &now)
	es, _ = f.db.Audit.Entries(ctx)
	if code != 200 || now.Seq != es[len(es)-1].Seq || now.Hash != es[len(es)-1].Hash || now.VerifySignature(f.key.Public().(ed25519.PublicKey)) != nil {
		t.Errorf("checkpoint now: %d %s", code, body)
	}
	if _, err := f.db.SQL().Exec("UPDATE audit_log SET object = 'host/x' WHERE seq = 1"); err != nil {
		t.Fatal(err)
	}
	if code, body := f.do("POST", api.Prefix+"/audit/checkpoint", admin, nil); code != 409 || !strings.Contains(string(body), "audit chain broken at entry 1") {
		t.Errorf("checkpoint of a broken chain: %d %s", code, body)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, body := f.do("GET", p, "", nil); code != 200 {
			t.Errorf("%s: %d %s", p, code, body)
		}
	}
	code, body = f.do("GET", "/metrics", "", nil)
	for _, m := range []string{"patchbay_http_requests_total", "go_sql_open_connections", "patchbay_rematch_duration_seconds", "patchbay_enrollments_total"} {
		if !strings.Contains(string(body), m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	if code != 200 {
		t.Errorf("/metrics: %d", code)
	}
}

// replica is a server process's stand-in: a server on a shared database,
// its HTTP server and its background work.
type replica struct {
	srv    *server.Server
	url    string
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned
}

// startReplica runs a server replica on dsn until the test ends (or
// cancel: it stops, releasing its lease as a graceful shutdown does).
func startReplica(t *testing.T, dsn, name string, cfg server.Config) *replica {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cfg.DB, cfg.Kinds, cfg.ReplicaID = db, kinds.All(), name
	if cfg.JobKey == nil {
		cfg.JobKey = testJobKey
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	rctx, cancel := context.WithCancel(ctx)
	r := &replica{srv: srv, url: ts.URL, cancel: cancel, done: make(chan struct{})}
	go func() {
		if err := srv.Run(rctx); err != nil {
			t.Error(err)
		}
		close(r.done)
	}()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

// leads asks the replica's /readyz whether it leads.
func (r *replica) leads() bool {
	resp, err := http.Get(r.url + "/readyz")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var v struct{ Leader bool }
	json.NewDecoder(resp.Body).Decode(&v)
	return v.Leader
}

// TestReplicasShareOneLeader: two server processes on one PostgreSQL
// database serve the same data; exactly one leads, and when it stops the
// other takes over within the lease TTL and one election interval (at its
// next step, the lease released; after a crash, once the TTL ran out:
// package leader's and the store contract's tests).
func TestReplicasShareOneLeader(t *testing.T) {
	dsn := pgtest.Fresh(t)
	ctx := context.Background()
	const ttl, every = time.Second, 200 * time.Millisecond
	start := func(name string) *replica {
		return startReplica(t, dsn, name, server.Config{LeaseTTL: ttl, ElectEvery: every})
	}
	leads := func(r *replica) bool { return r.leads() }
	a, b := start("a"), start("b")
	deadline := time.Now().Add(10 * time.Second)
	for !leads(a) && !leads(b) {
		if time.Now().After(deadline) {
			t.Fatal("no replica leads")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(3 * every)
	la, lb := leads(a), leads(b)
	if la == lb {
		t.Fatalf("leaders: a %v, b %v; want exactly one", la, lb)
	}
	leader, other := a, b
	if lb {
		leader, other = b, a
	}
	// Data written through one replica is served by the other.
	secret, id, hash, _ := auth.NewSecret()
	if err := other.srv.DB().Tokens.Create(ctx, auth.Token{ID: id, Kind: auth.KindAPI, Role: auth.Viewer, Created: time.Now(), UsesLeft: -1}, hash); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", leader.url+api.Prefix+"/whoami", nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("a token made through one replica, used on the other: %v %v", resp, err)
	}
	// The leader stops.
	died := time.Now()
	leader.cancel()
	<-leader.done
	for !leads(other) {
		if time.Since(died) > ttl+every+2*time.Second {
			t.Fatalf("no takeover after %v", time.Since(died))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if took := time.Since(died); took > ttl+every+500*time.Millisecond {
		t.Errorf("takeover took %v, want within TTL %v + interval %v", took, ttl, every)
	}
}

// TestCheckpointWebhook: with a webhook set, each signed checkpoint is
// POSTed to it, and a webhook that fails makes the export fail (and be
// logged by the leader) rather than pass silently.
func TestCheckpointWebhook(t *testing.T) {
	var fail atomic.Bool
	posts := make(chan []byte, 1)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		b, _ := io.ReadAll(r.Body)
		posts <- b
	}))
	defer hook.Close()
	f := newFixture(t, "sqlite", func(c *server.Config) { c.CheckpointDir, c.CheckpointURL = "", hook.URL })
	admin := f.api(auth.Admin)
	if code, body := f.do("POST", api.Prefix+"/tokens", admin, api.TokenRequest{Role: auth.Viewer}); code != 201 {
		t.Fatal(code, string(body))
	}
	cp, err := f.srv.Checkpoint(context.Background())
	if err != nil || cp.Seq != 1 {
		t.Fatal(cp, err)
	}
	var posted audit.Checkpoint
	got := <-posts
	if err := json.Unmarshal(got, &posted); err != nil {
		t.Fatalf("webhook body %q: %v", got, err)
	}
	if posted.Seq != 1 || posted.Hash != cp.Hash || posted.VerifySignature(f.key.Public().(ed25519.PublicKey)) != nil {
		t.Errorf("webhook got %+v, want %+v, signed", posted, cp)
	}
	fail.Store(true)
	if _, err := f.srv.Checkpoint(context.Background()); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("failing webhook: %v", err)
	}
}
