package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/feeds"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/inventory/collect"
	"github.com/patchbay/patchbay/kinds"
	"github.com/patchbay/patchbay/patch"
	"github.com/patchbay/patchbay/server"
	"github.com/patchbay/patchbay/store"
	"github.com/patchbay/patchbay/web"
)

// BenchmarkPages measures each page's server time on SQLite with a large
// fleet: PATCHBAY_BENCH_HOSTS hosts (default 10,000), each with the
// shared web-db inventory (about 150 open findings each: 1.5 million for
// 10,000 hosts), checked in through the API. The fleet is built once, in
// a database kept in PATCHBAY_BENCH_DIR when set (built there on first
// use, reused after). Each sub-benchmark reports p50 and p95 page times
// and the page's size.
func BenchmarkPages(b *testing.B) {
	n := 10000
	if v := os.Getenv("PATCHBAY_BENCH_HOSTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			b.Fatalf("PATCHBAY_BENCH_HOSTS=%q: want a positive number", v)
		}
	}
	ctx := context.Background()
	dir := os.Getenv("PATCHBAY_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	dbPath := filepath.Join(dir, fmt.Sprintf("web-bench-%d.db", n))
	_, statErr := os.Stat(dbPath)
	fresh := statErr != nil
	db, err := store.Open(ctx, dbPath)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	srv, err := server.New(server.Config{DB: db, Kinds: kinds.All(), ReplicaID: "bench", JobKey: testJobKey, CheckpointDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	h := srv.Handler()
	do := func(method, path, token string, body, out any) {
		var buf bytes.Buffer
		if body != nil {
			json.NewEncoder(&buf).Encode(body)
		}
		req := httptest.NewRequest(method, path, &buf)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code/100 != 2 {
			b.Fatalf("%s %s: %d %s", method, path, rec.Code, rec.Body)
		}
		if out != nil {
			json.Unmarshal(rec.Body.Bytes(), out)
		}
	}
	newToken := func(kind auth.Kind, role auth.Role) string {
		secret, id, hash, err := auth.NewSecret()
		if err != nil {
			b.Fatal(err)
		}
		if err := db.Tokens.Create(ctx, auth.Token{ID: id, Kind: kind, Role: role, Name: "bench", Created: time.Now(), UsesLeft: -1}, hash); err != nil {
			b.Fatal(err)
		}
		return secret
	}
	if fresh {
		feedDir := sharedtest.Dir(b, "feeds/osv/Debian")
		if _, err := (&feeds.Importer{Store: db}).ImportPaths(ctx, []string{filepath.Join(feedDir, "all.zip")}); err != nil {
			b.Fatal(err)
		}
		inv, err := collect.Collect(ctx, collect.Options{Root: sharedtest.DebianRoot(b, "status-bookworm-web-db")})
		if err != nil {
			b.Fatal(err)
		}
		pkgs := inv.Packages
		enroll := newToken(auth.KindEnrollment, auth.Agent)
		start := time.Now()
		for i := range n {
			name := fmt.Sprintf("host-%05d", i)
			env := []string{"prod", "staging", "dev"}[i%3]
			facts := fleet.Facts{Hostname: name, MachineID: fmt.Sprintf("m-%05d", i), OSID: "debian", OSVersion: "12", Ecosystem: "Debian:12", AgentVersion: "bench",
				Labels: map[string]string{"env": env, "exposure": []string{"internet", "internal", "internal"}[i%3]}, RebootRequired: i%7 == 0}
			var e api.EnrollResponse
			do("POST", api.Prefix+"/agent/enroll", enroll, api.EnrollRequest{Facts: facts}, &e)
			ups := []patch.Update{{Ecosystem: "Debian:12", Name: "libssl3", SourceName: "openssl", Installed: "3.0.20-1~deb12u2", Candidate: "3.0.22-1~deb12u2",
				Origin: "bookworm-security", Pocket: "security", CVEs: []string{}, Types: []patch.Type{patch.Security}, Cycle: patch.CycleSystem}}
			p := pkgs
			rep := api.Report{CollectedAt: time.Now().UTC(), Facts: facts, InventoryHash: fleet.InventoryHash(pkgs), Inventory: &p, UpdatesHash: fleet.UpdatesHash(ups), Updates: &ups}
			do("POST", api.Prefix+"/agent/checkin", e.Credential, rep, nil)
			if (i+1)%1000 == 0 {
				b.Logf("%d hosts checked in (%s)", i+1, time.Since(start).Round(time.Second))
			}
		}
		if err := srv.FlushCheckins(ctx); err != nil {
			b.Fatal(err)
		}
	}
	var hl api.HostList
	admin := newToken(auth.KindAPI, auth.Admin)
	do("GET", api.Prefix+"/hosts", admin, nil, &hl)
	if len(hl.Hosts) < n {
		b.Fatalf("%d hosts in the database, want %d", len(hl.Hosts), n)
	}
	open := 0
	for _, h := range hl.Hosts {
		open += h.OpenTotal()
	}
	b.Logf("%d hosts, %d open findings", len(hl.Hosts), open)

	ui, err := web.New(ctx, web.Config{API: h, Users: db.Users})
	if err != nil {
		b.Fatal(err)
	}
	secret, _ := auth.RandomSecret(32)
	now := time.Now().UTC()
	if err := db.Users.CreateSession(ctx, auth.HashOf(secret), auth.Session{User: "bench", Role: auth.Admin, CSRF: "x", Created: now, LastSeen: now, Expires: now.Add(24 * time.Hour)}); err != nil {
		b.Fatal(err)
	}
	uh := ui.Handler()
	// The KPI figures the overview's panel and the KPI page show are
	// computed in the background: how long that takes.
	for _, q := range []string{"/kpi?since=90d&by=priority", "/kpi/history?metric=open&interval=week&by=priority&since=90d"} {
		t := time.Now()
		do("GET", api.Prefix+q, admin, nil, nil)
		b.Logf("GET %s: %s (the UI computes it in the background)", q, time.Since(t).Round(time.Millisecond))
	}
	today := time.Now().UTC().Format(time.DateOnly)
	pages := []string{"/", "/?as_of=" + today, "/findings", "/findings?priority=P4&sort=due", "/findings?priority=P4&sort=first_seen", "/findings?package=openssl&label=env%3Dprod",
		"/findings?as_of=" + today, "/findings?as_of=" + today + "&page=100", "/hosts", "/hosts?page=100&sort=open",
		"/hosts/" + hl.Hosts[n/2].ID, "/vulns", "/patches", "/plans", "/feeds", "/policy", "/kpi?by=team"}
	for _, pg := range pages {
		b.Run(pg, func(b *testing.B) {
			var times []time.Duration
			size := 0
			for b.Loop() {
				req := httptest.NewRequest("GET", pg, nil)
				req.AddCookie(&http.Cookie{Name: "__Host-patchbay-session", Value: secret})
				rec := httptest.NewRecorder()
				t := time.Now()
				uh.ServeHTTP(rec, req)
				times = append(times, time.Since(t))
				if rec.Code != 200 {
					b.Fatalf("%s: %d %s", pg, rec.Code, rec.Body)
				}
				size = rec.Body.Len()
			}
			sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
			b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(times[len(times)*95/100].Microseconds())/1000, "p95-ms")
			b.ReportMetric(float64(size)/1024, "KB")
		})
	}
}
