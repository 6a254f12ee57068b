package server_test

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/audit"
	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/internal/pgtest"
	"github.com/patchbay/patchbay/kinds"
	"github.com/patchbay/patchbay/server"
	"github.com/patchbay/patchbay/store"
)

// auditOf returns the audit entries of one action, oldest first.
func (f *fixture) auditOf(action string) []audit.Entry {
	f.t.Helper()
	es, err := f.db.Audit.Entries(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	var out []audit.Entry
	for _, e := range es {
		if e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

// TestRefreshAuditsWhoAsked: the server's own refresh is audited as the
// server; an operator's POST /feeds/refresh as the operator's token.
func TestRefreshAuditsWhoAsked(t *testing.T) {
	dir := t.TempDir()
	f := newFixture(t, "sqlite", func(c *server.Config) { c.Feeds = server.FeedSource{Paths: []string{debianFeed(t), dir}} })
	if _, err := f.srv.RefreshFeeds(context.Background(), fleet.Fence{}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "PB-2026-0001.json"), []byte(`{"id": "PB-2026-0001", "modified": "2026-11-22T10:00:00Z",
		"affected": [{"package": {"ecosystem": "Debian:12", "name": "nginx"},
		"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "9.9"}]}]}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	operator := f.api(auth.Operator)
	if code, body := f.do("POST", api.Prefix+"/feeds/refresh", operator, nil); code != 200 {
		t.Fatalf("refresh: %d %s", code, body)
	}
	es := f.auditOf("feeds.refresh")
	if len(es) != 2 {
		t.Fatalf("%d feeds.refresh entries, want 2: %+v", len(es), es)
	}
	if es[0].Actor != "server:test" {
		t.Errorf("the server's own refresh audited as %q, want server:test", es[0].Actor)
	}
	if want := "api:" + auth.IDOf(operator); es[1].Actor != want {
		t.Errorf("the operator's refresh audited as %q, want %q", es[1].Actor, want)
	}
}

// TestLabelFilterRefusedWhenMalformed: a label filter is key=value with a
// key a label may have (fleet.ValidateLabel), each key once; anything else
// is a 400 naming query.label, on /hosts and /findings alike.
func TestLabelFilterRefusedWhenMalformed(t *testing.T) {
	f := newFixture(t, "sqlite", nil)
	viewer := f.api(auth.Viewer)
	for _, bad := range []string{"a", "=x", "=", "", "bad%20key=x", "k%C3%A9y=x", strings.Repeat("k", 64) + "=x", "env=a&label=env=b"} {
		for _, route := range []string{"/hosts", "/findings"} {
			code, body := f.do("GET", api.Prefix+route+"?label="+bad, viewer, nil)
			e := errOf(body)
			if code != 400 || e.Field != "query.label" || !strings.Contains(e.Error, "key=value") {
				t.Errorf("%s?label=%s: %d %s; want 400 naming query.label and key=value", route, bad, code, body)
			}
		}
	}
	// Well-formed, including a value with '=' (values are free text).
	for _, good := range []string{"env=prod", "env=", "patchbay.io/service=web", "bogus==", "b64=YQ==", "env=prod&label=team=x"} {
		if code, body := f.do("GET", api.Prefix+"/hosts?label="+good, viewer, nil); code != 200 {
			t.Errorf("hosts?label=%s: %d %s", good, code, body)
		}
	}
}

// TestRevokeTokenOnce: revoking a revoked token is a 409 saying when it
// was revoked, with no second audit entry; an unknown id is a 404.
func TestRevokeTokenOnce(t *testing.T) {
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	f := newFixture(t, "sqlite", func(c *server.Config) { c.Now = func() time.Time { return at } })
	admin := f.api(auth.Admin)
	id := auth.IDOf(f.api(auth.Viewer))
	if code, body := f.do("DELETE", api.Prefix+"/tokens/"+id, admin, nil); code != 204 {
		t.Fatalf("first revocation: %d %s", code, body)
	}
	code, body := f.do("DELETE", api.Prefix+"/tokens/"+id, admin, nil)
	if e := errOf(body); code != 409 || e.Code != api.CodeConflict || e.Error != "token "+id+" is already revoked (at 2026-11-22T10:00:00Z)" {
		t.Errorf("second revocation: %d %s", code, body)
	}
	if es := f.auditOf("token.revoke"); len(es) != 1 {
		t.Errorf("%d token.revoke audit entries, want 1", len(es))
	}
	if code, body := f.do("DELETE", api.Prefix+"/tokens/0123456789ab", admin, nil); code != 404 {
		t.Errorf("unknown token: %d %s", code, body)
	}
	var list struct{ Tokens []auth.Token }
	_, body = f.do("GET", api.Prefix+"/tokens", admin, nil)
	f.decode(body, &list)
	for _, tok := range list.Tokens {
		if tok.ID == id && (!tok.Revoked || !tok.RevokedAt.Equal(at)) {
			t.Errorf("listed %+v; want revoked at %s", tok, at)
		}
	}
}

// TestRestartLeadsAtOnce: a server that stops gracefully releases its
// lease, so the next one started on the database leads at once, not a
// lease TTL (here 30 s) later.
func TestRestartLeadsAtOnceSQLite(t *testing.T) {
	testRestartLeadsAtOnce(t, filepath.Join(t.TempDir(), "patchbay.db"))
}

func TestRestartLeadsAtOncePostgres(t *testing.T) { testRestartLeadsAtOnce(t, pgtest.Fresh(t)) }

func testRestartLeadsAtOnce(t *testing.T, dsn string) {
	run := func(name string) (stop func(), leads func() bool) {
		db, err := store.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		srv, err := server.New(server.Config{DB: db, Kinds: kinds.All(), ReplicaID: name, JobKey: testJobKey, LeaseTTL: 30 * time.Second, ElectEvery: 100 * time.Millisecond})
		if err != nil {
			db.Close()
			t.Fatal(err)
		}
		ts := httptest.NewServer(srv.Handler())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Run(ctx) }()
		var once sync.Once
		stop = func() {
			once.Do(func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("%s: %v", name, err)
				}
				ts.Close()
				db.Close()
			})
		}
		t.Cleanup(stop)
		return stop, (&replica{url: ts.URL}).leads
	}
	waitLeads := func(leads func() bool, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for !leads() {
			if time.Since(start) > within {
				t.Fatalf("not leading after %v", within)
			}
			time.Sleep(20 * time.Millisecond)
		}
		return time.Since(start)
	}
	stop, leads := run("first")
	waitLeads(leads, 10*time.Second)
	stop()
	_, leads = run("second")
	if took := waitLeads(leads, 20*time.Second); took > 3*time.Second {
		t.Errorf("the restarted server led %v after the first stopped; want at once (its first election step)", took)
	}
}

// TestOneServerPerSQLiteFile: a second server on the same SQLite file is
// refused, naming the file's lock; PostgreSQL replicas are not.
func TestOneServerPerSQLiteFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "patchbay.db")
	open := func() *store.DB {
		db, err := store.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	cfg := func(db *store.DB) server.Config {
		return server.Config{DB: db, Kinds: kinds.All(), JobKey: testJobKey}
	}
	first := open()
	if _, err := server.New(cfg(first)); err != nil {
		t.Fatal(err)
	}
	second := open()
	if _, err := server.New(cfg(second)); err == nil || !strings.Contains(err.Error(), path+".lock") {
		t.Fatalf("a second server on %s: %v; want refused naming its lock", path, err)
	}
	first.Close()
	if _, err := server.New(cfg(second)); err != nil {
		t.Errorf("once the first closed: %v", err)
	}
	dsn := pgtest.Fresh(t)
	for i := range 2 {
		db, err := store.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		if _, err := server.New(cfg(db)); err != nil {
			t.Errorf("PostgreSQL replica %d: %v", i, err)
		}
	}
}
