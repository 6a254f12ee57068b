package server_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/patch"
	"github.com/patchbay/patchbay/rollout"
)

func TestTextRefusedSQLite(t *testing.T)   { testTextRefused(t, "sqlite") }
func TestTextRefusedPostgres(t *testing.T) { testTextRefused(t, "postgres") }

// testTextRefused sends NUL bytes and invalid UTF-8 in path parameters,
// query parameters and JSON strings: each is a 400 naming the parameter
// or field, on both stores (PostgreSQL answered 500 to them, SQLite 404,
// 200 or 201).
func testTextRefused(t *testing.T, backend string) {
	f := newFixture(t, backend, nil)
	viewer, operator, admin := f.api(auth.Viewer), f.api(auth.Operator), f.api(auth.Admin)
	enrollTok := f.token(auth.KindEnrollment, auth.Agent, 100, time.Time{})
	host := f.enroll(enrollTok, factsOf("web-1", "m-web-1"))

	pkg := inventory.Package{Ecosystem: "Debian:12", Name: "bash\x00", Version: "5.2", Location: "/var/lib/dpkg/status"}
	badInv := report(factsOf("web-1", "m-web-1"), []inventory.Package{{Ecosystem: "Debian:12", Name: "curl", Version: "7"}, pkg}, true)
	badUpd := report(factsOf("web-1", "m-web-1"), nil, true)
	badUpd.Updates = &[]patch.Update{{Ecosystem: "Debian:12", Name: "curl", Installed: "7", Candidate: "8", CVEs: []string{"CVE-1\x00"}}}
	badUpd.UpdatesHash = fleet.UpdatesHash(*badUpd.Updates)
	rawEnroll := []byte(`{"facts":{"hostname":"a` + "\xff" + `b","machine_id":"m-raw","os_id":"debian","os_version":"12","ecosystem":"Debian:12","agent_version":"t"}}`)
	rawToken := []byte(`{"kind":"api","role":"viewer","name":"n` + "\xc3\x28" + `"}`)
	rawKey := []byte(`{"labels":{"k` + "\xff" + `":"v"}}`)

	p := api.Prefix
	for _, c := range []struct {
		name, method, path, token string
		body                      any
		field                     string
	}{
		{"host id NUL", "GET", p + "/hosts/%00", viewer, nil, "path.id"},
		{"host id invalid UTF-8", "GET", p + "/hosts/%FF", viewer, nil, "path.id"},
		{"host labels id", "PUT", p + "/hosts/a%00/labels", operator, api.Labels{Labels: map[string]string{}}, "path.id"},
		{"host revoke id", "POST", p + "/hosts/%C3%28/revoke", admin, nil, "path.id"},
		{"vuln id", "GET", p + "/vulns/CVE%00", viewer, nil, "path.id"},
		{"plan id", "GET", p + "/plans/%00", viewer, nil, "path.id"},
		{"plan approve id", "POST", p + "/plans/%FF/approve", operator, nil, "path.id"},
		{"token id", "DELETE", p + "/tokens/%00", admin, nil, "path.id"},
		{"finding id", "GET", p + "/findings/%00", viewer, nil, "path.id"},
		{"service name", "PUT", p + "/services/%00/inventory", operator, api.ServiceInventory{}, "path.name"},
		{"findings host", "GET", p + "/findings?host=%00", viewer, nil, "query.host"},
		{"findings vuln", "GET", p + "/findings?vuln=%00", viewer, nil, "query.vuln"},
		{"findings package", "GET", p + "/findings?package=%FF", viewer, nil, "query.package"},
		{"hosts label", "GET", p + "/hosts?label=env%3D%00", viewer, nil, "query.label"},
		{"vulns filter", "GET", p + "/vulns?package=%FF", viewer, nil, "query.package"},
		{"notifications plan", "GET", p + "/notifications?plan=%00", viewer, nil, "query.plan"},
		{"policy history name", "GET", p + "/policy/history?name=%00", viewer, nil, "query.name"},
		{"query parameter name", "GET", p + "/hosts?%FF=1", viewer, nil, "query"},
		{"enroll hostname NUL", "POST", p + "/agent/enroll", enrollTok, api.EnrollRequest{Facts: factsOf("a\x00b", "m-nul")}, "facts.hostname"},
		{"enroll machine_id NUL", "POST", p + "/agent/enroll", enrollTok, api.EnrollRequest{Facts: factsOf("nul", "m\x00")}, "facts.machine_id"},
		{"enroll hostname invalid UTF-8", "POST", p + "/agent/enroll", enrollTok, rawEnroll, "facts.hostname"},
		{"check-in inventory name", "POST", p + "/agent/checkin", host.Credential, badInv, "inventory[1].name"},
		{"check-in update CVE", "POST", p + "/agent/checkin", host.Credential, badUpd, "updates[0].cves[0]"},
		{"token name NUL", "POST", p + "/tokens", admin, api.TokenRequest{Kind: auth.KindAPI, Role: auth.Viewer, Name: "x\x00y"}, "name"},
		{"token name invalid UTF-8", "POST", p + "/tokens", admin, rawToken, "name"},
		{"label value", "PUT", p + "/hosts/" + host.HostID + "/labels", operator, api.Labels{Labels: map[string]string{"env": "prod\x00"}}, "labels.env"},
		{"label key", "PUT", p + "/hosts/" + host.HostID + "/labels", operator, rawKey, "labels"},
		{"plan selector", "POST", p + "/plans", operator, rollout.PlanSpec{Selector: rollout.Selector{Hosts: []string{"\x00"}}}, "selector.hosts[0]"},
	} {
		f.chapter(c.name, func(t *testing.T) {
			code, b := f.do(c.method, c.path, c.token, c.body)
			e := errOf(b)
			if code != http.StatusBadRequest || e.Code != api.CodeBadRequest || e.Field != c.field {
				t.Errorf("%s %s: %d %s; want 400 bad_request naming %s", c.method, c.path, code, b, c.field)
			}
		})
	}

	f.chapter("text that only looks like a NUL is kept", func(t *testing.T) {
		// A backslash followed by u0000 is six characters, not a NUL.
		got := f.enroll(enrollTok, factsOf(`a\u0000b`, "m-escaped"))
		code, b := f.do("GET", p+"/hosts/"+got.HostID, viewer, nil)
		var d fleet.HostDetail
		f.decode(b, &d)
		if code != http.StatusOK || d.Hostname != `a\u0000b` {
			t.Errorf("GET host: %d, hostname %q", code, d.Hostname)
		}
		if code, b := f.do("GET", p+"/findings?package=caf%C3%A9", viewer, nil); code != http.StatusOK {
			t.Errorf("findings of a UTF-8 package name: %d %s", code, b)
		}
	})
}
