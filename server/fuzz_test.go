package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/internal/pgtest"
	"github.com/patchbay/patchbay/kinds"
	"github.com/patchbay/patchbay/server"
	"github.com/patchbay/patchbay/store"
)

// fuzzTarget is a server on one store with a credential of every kind.
type fuzzTarget struct {
	name   string
	url    string
	routes []server.Route
	tokens map[string]string // role (or "enrollment", "none") → secret
}

var fuzzRoles = []string{"none", "viewer", "operator", "admin", "agent", "enrollment"}

func newFuzzTarget(f *testing.F, backend string) *fuzzTarget {
	ctx := context.Background()
	dsn := filepath.Join(f.TempDir(), "patchbay.db")
	if backend == "postgres" {
		dsn = pgtest.Fresh(f)
	}
	db, err := store.Open(ctx, dsn)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	_, key, _ := ed25519.GenerateKey(nil)
	srv, err := server.New(server.Config{DB: db, Kinds: kinds.All(), ReplicaID: "fuzz", AuditKey: key, JobKey: testJobKey, CheckpointDir: f.TempDir(), MaxBody: 1 << 20, BodyWait: time.Second})
	if err != nil {
		f.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	f.Cleanup(ts.Close)
	ft := &fuzzTarget{name: backend, url: ts.URL, routes: srv.Routes(), tokens: map[string]string{}}
	mk := func(kind auth.Kind, role auth.Role, uses int) string {
		secret, id, hash, err := auth.NewSecret()
		if err != nil {
			f.Fatal(err)
		}
		if err := db.Tokens.Create(ctx, auth.Token{ID: id, Kind: kind, Role: role, Name: "fuzz " + string(role), Created: time.Now(), UsesLeft: uses}, hash); err != nil {
			f.Fatal(err)
		}
		return secret
	}
	for _, r := range []auth.Role{auth.Viewer, auth.Operator, auth.Admin} {
		ft.tokens[string(r)] = mk(auth.KindAPI, r, -1)
	}
	ft.tokens["enrollment"] = mk(auth.KindEnrollment, auth.Agent, -1)
	// An enrolled agent's credential.
	req, _ := http.NewRequest("POST", ts.URL+"/api/v1/agent/enroll", strings.NewReader(`{"facts": {"hostname": "fuzz-host", "machine_id": "fuzz-machine", "os_id": "debian", "os_version": "12"}}`))
	req.Header.Set("Authorization", "Bearer "+ft.tokens["enrollment"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`"credential":\s*"([^"]+)"`).FindSubmatch(b)
	if resp.StatusCode != http.StatusCreated || m == nil {
		f.Fatalf("enroll the fuzz agent: %d %s", resp.StatusCode, b)
	}
	ft.tokens["agent"] = string(m[1])
	return ft
}

// fuzzQueryKeys are the filters the routes read (wait is left out: a long
// poll would hold the fuzzer for up to a minute).
var fuzzQueryKeys = []string{"host", "vuln", "package", "plan", "name", "kind", "status", "priority", "team", "service", "lane", "sort", "limit", "after", "label", "os", "stale", "kev", "hosts"}

var pathParam = regexp.MustCompile(`\{[a-z]+\}`)

// allowed says whether a caller of role may pass the route's role check.
func allowed(rt server.Route, role string) bool {
	switch {
	case rt.Need == "":
		return true
	case role == "none":
		return false
	case rt.Need == "enrollment" || role == "enrollment":
		return rt.Need == "enrollment" && role == "enrollment"
	}
	return auth.Role(role).Allows(rt.Need)
}

// FuzzRoutes drives the route table with random path values, query
// filters and bodies under every role against both stores: no answer is
// a 5xx, and no caller gets past a role check it should not.
func FuzzRoutes(f *testing.F) {
	// PostgreSQL is required as the other tests require it (skipped, or
	// failed under PATCHBAY_REQUIRE_SYSTEM=1, when it is not reachable).
	targets := []*fuzzTarget{newFuzzTarget(f, "sqlite"), newFuzzTarget(f, "postgres")}
	n := len(targets[0].routes)
	for i := range n {
		for j := range fuzzRoles {
			f.Add(uint16(i), uint8(j), "x", uint8(0), "v", []byte(`{}`))
		}
	}
	for i := range n {
		f.Add(uint16(i), uint8(3), "a\x00b", uint8(i), "\xff\x00", []byte("{\"name\": \"a\\u0000b\", \"facts\": {\"hostname\": \"\xff\"}}"))
		f.Add(uint16(i), uint8(3), "%", uint8(i), "", []byte(`{"ttl_seconds": 9223372036854775807, "labels": null}`))
	}
	f.Fuzz(func(t *testing.T, ri uint16, rolei uint8, param string, qk uint8, qv string, body []byte) {
		for _, tg := range targets {
			rt := tg.routes[int(ri)%len(tg.routes)]
			role := fuzzRoles[int(rolei)%len(fuzzRoles)]
			path := pathParam.ReplaceAllStringFunc(rt.Pattern, func(string) string { return url.PathEscape(param) })
			path += "?" + fuzzQueryKeys[int(qk)%len(fuzzQueryKeys)] + "=" + url.QueryEscape(qv)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			req, err := http.NewRequestWithContext(ctx, rt.Method, tg.url+path, bytes.NewReader(body))
			if err != nil {
				cancel()
				t.Fatal(err)
			}
			if tok := tg.tokens[role]; tok != "" {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				cancel()
				t.Fatalf("%s %s %s as %s: %v", tg.name, rt.Method, path, role, err)
			}
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
			resp.Body.Close()
			cancel()
			where := fmt.Sprintf("%s: %s %s as %s (body %q)", tg.name, rt.Method, path, role, body)
			if resp.StatusCode >= 500 {
				t.Errorf("%s: %d %s", where, resp.StatusCode, b)
			}
			if !allowed(rt, role) && resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s: %d past the role check (needs %s): %s", where, resp.StatusCode, rt.Need, b)
			}
		}
	})
}
