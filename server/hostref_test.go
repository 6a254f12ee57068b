package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/buildinfo"
	"github.com/patchbay/patchbay/fleet"
)

// TestHostsByIDOrHostname: every route that names a host takes its id or
// its hostname (without regard to case); a hostname two hosts share is a
// 409 naming both ids, an unknown one a 404 naming it. --os matches
// without regard to case too.
func TestHostsByIDOrHostname(t *testing.T) {
	f := newFixture(t, "sqlite", nil)
	viewer, admin := f.api(auth.Viewer), f.api(auth.Admin)
	tok := f.token(auth.KindEnrollment, auth.Agent, -1, time.Now().Add(time.Hour))
	web := f.enroll(tok, factsOf("web-1", "machine-w"))
	db1 := f.enroll(tok, factsOf("db", "machine-d1"))
	db2 := f.enroll(tok, factsOf("DB", "machine-d2"))

	var h fleet.HostDetail
	code, b := f.do("GET", api.Prefix+"/hosts/WEB-1", viewer, nil)
	f.decode(b, &h)
	if code != 200 || h.ID != web.HostID {
		t.Fatalf("GET /hosts/WEB-1: %d %s", code, b)
	}
	code, b = f.do("GET", api.Prefix+"/hosts/"+web.HostID, viewer, nil)
	if code != 200 {
		t.Fatalf("by id: %d %s", code, b)
	}
	code, b = f.do("GET", api.Prefix+"/hosts/db", viewer, nil)
	if e := errOf(b); code != http.StatusConflict || e.Code != api.CodeAmbiguous || !strings.Contains(e.Error, db1.HostID) || !strings.Contains(e.Error, db2.HostID) {
		t.Errorf("ambiguous hostname: %d %s", code, b)
	}
	code, b = f.do("GET", api.Prefix+"/hosts/nosuch", viewer, nil)
	if e := errOf(b); code != 404 || !strings.Contains(e.Error, `"nosuch"`) {
		t.Errorf("unknown host: %d %s", code, b)
	}
	code, b = f.do("GET", api.Prefix+"/findings?host=web-1", viewer, nil)
	if code != 200 {
		t.Errorf("findings by hostname: %d %s", code, b)
	}
	code, b = f.do("GET", api.Prefix+"/findings?host=nosuch", viewer, nil)
	if e := errOf(b); code != 404 || e.Field != "query.host" {
		t.Errorf("findings of an unknown host: %d %s (want 404, not an empty list)", code, b)
	}
	code, b = f.do("PUT", api.Prefix+"/hosts/web-1/labels", admin, map[string]any{"labels": map[string]string{"env": "prod"}})
	if code != 200 {
		t.Errorf("labels by hostname: %d %s", code, b)
	}
	code, b = f.do("POST", api.Prefix+"/hosts/web-1/revoke", admin, nil)
	if code != 200 || !strings.Contains(string(b), web.HostID) {
		t.Errorf("revoke by hostname: %d %s", code, b)
	}
	var hl api.HostList
	_, b = f.do("GET", api.Prefix+"/hosts?os=debian", viewer, nil)
	f.decode(b, &hl)
	if len(hl.Hosts) != 3 {
		t.Errorf("os=debian: %d hosts, want 3", len(hl.Hosts))
	}
	_, b = f.do("GET", api.Prefix+"/hosts?os=debian:12", viewer, nil)
	f.decode(b, &hl)
	if len(hl.Hosts) != 3 {
		t.Errorf("os=debian:12: %d hosts, want 3", len(hl.Hosts))
	}
	_, b = f.do("GET", api.Prefix+"/hosts?os=debia", viewer, nil)
	f.decode(b, &hl)
	if len(hl.Hosts) != 0 {
		t.Errorf("os=debia matched %d hosts", len(hl.Hosts))
	}
}

// TestHealthzIdentifiesTheBuild: /healthz names the version and the build.
func TestHealthzIdentifiesTheBuild(t *testing.T) {
	f := newFixture(t, "sqlite", nil)
	code, b := f.do("GET", "/healthz", "", nil)
	var got struct {
		Status, Version string
		Build           buildinfo.Info
	}
	if err := json.Unmarshal(b, &got); code != 200 || err != nil || got.Status != "ok" || got.Version != buildinfo.Get().Short() || got.Build != buildinfo.Get() {
		t.Errorf("/healthz: %d %s (%v)", code, b, err)
	}
}
