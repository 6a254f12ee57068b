package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/patch"
)

func TestReportLimitsSQLite(t *testing.T)   { testReportLimits(t, "sqlite") }
func TestReportLimitsPostgres(t *testing.T) { testReportLimits(t, "postgres") }

// testReportLimits: every field of an enrollment or check-in report is
// bounded, and one past a limit is a 400 naming the field; so are a
// token's lifetime and a labels body that forgot its labels.
func testReportLimits(t *testing.T, backend string) {
	f := newFixture(t, backend, nil)
	p := api.Prefix
	operator, admin := f.api(auth.Operator), f.api(auth.Admin)
	enrollTok := f.token(auth.KindEnrollment, auth.Agent, 100, time.Time{})
	facts := factsOf("web-1", "m-web-1")
	host := f.enroll(enrollTok, facts)

	with := func(mod func(*fleet.Facts)) fleet.Facts {
		ff := facts
		mod(&ff)
		return ff
	}
	addrs := make([]string, 1025)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("10.0.%d.%d", i/256, i%256)
	}
	labels := map[string]string{}
	for i := range 129 {
		labels[fmt.Sprintf("k%d", i)] = "v"
	}
	pkg := inventory.Package{Ecosystem: "Debian:12", Name: "bash", Version: "5.2", Location: "/var/lib/dpkg/status"}
	longLoc := pkg
	longLoc.Location = strings.Repeat("/x", 3000)
	invRep := report(facts, []inventory.Package{pkg, longLoc}, true)
	cves := make([]string, 10_001)
	for i := range cves {
		cves[i] = fmt.Sprintf("CVE-2024-%05d", i)
	}
	updRep := report(facts, []inventory.Package{}, true)
	updRep.Updates = &[]patch.Update{{Ecosystem: "Debian:12", Name: "bash", Installed: "5.2", Candidate: "5.3", CVEs: cves}}
	updRep.UpdatesHash = fleet.UpdatesHash(*updRep.Updates)
	hashRep := report(facts, nil, false)
	hashRep.InventoryHash = strings.Repeat("a", 200)

	for _, c := range []struct {
		name, method, path, token string
		body                      any
		field, problem            string
	}{
		{"enroll os_pretty", "POST", p + "/agent/enroll", enrollTok, api.EnrollRequest{Facts: with(func(f *fleet.Facts) { f.OSPretty = strings.Repeat("D", 1_000_000) })},
			"facts.os_pretty", "facts.os_pretty: 1000000 bytes, at most 256"},
		{"check-in os_pretty", "POST", p + "/agent/checkin", host.Credential, report(with(func(f *fleet.Facts) { f.OSPretty = strings.Repeat("D", 257) }), nil, false),
			"facts.os_pretty", "257 bytes, at most 256"},
		{"check-in addresses", "POST", p + "/agent/checkin", host.Credential, report(with(func(f *fleet.Facts) { f.Addresses = addrs }), nil, false),
			"facts.addresses", "1025 entries, at most 1024"},
		{"check-in address", "POST", p + "/agent/checkin", host.Credential, report(with(func(f *fleet.Facts) { f.Addresses = []string{strings.Repeat("a", 129)} }), nil, false),
			"facts.addresses[0]", "129 bytes, at most 128"},
		{"check-in labels", "POST", p + "/agent/checkin", host.Credential, report(with(func(f *fleet.Facts) { f.Labels = labels }), nil, false),
			"facts.labels", "129 entries, at most 128"},
		{"check-in uptime", "POST", p + "/agent/checkin", host.Credential, report(with(func(f *fleet.Facts) { f.UptimeSeconds = -5 }), nil, false),
			"facts.uptime_seconds", "negative"},
		{"check-in package location", "POST", p + "/agent/checkin", host.Credential, invRep,
			"inventory[1].location", "6000 bytes, at most 4096"},
		{"check-in update CVEs", "POST", p + "/agent/checkin", host.Credential, updRep,
			"updates[0].cves", "10001 entries, at most 10000"},
		{"check-in inventory hash", "POST", p + "/agent/checkin", host.Credential, hashRep,
			"inventory_hash", "200 bytes, at most 128"},
		{"server labels", "PUT", p + "/hosts/" + host.HostID + "/labels", operator, api.Labels{Labels: labels},
			"labels", "129 entries, at most 128"},
		{"labels null", "PUT", p + "/hosts/" + host.HostID + "/labels", operator, []byte(`null`), "labels", "missing"},
		{"labels missing", "PUT", p + "/hosts/" + host.HostID + "/labels", operator, []byte(`{}`), "labels", "missing"},
		{"labels of null", "PUT", p + "/hosts/" + host.HostID + "/labels", operator, []byte(`{"labels": null}`), "labels", "missing"},
		{"ttl overflow", "POST", p + "/tokens", admin, api.TokenRequest{Kind: auth.KindEnrollment, Uses: 1, TTLSeconds: 10_000_000_000}, "ttl_seconds", "10 years"},
		{"ttl past 10 years", "POST", p + "/tokens", admin, api.TokenRequest{Kind: auth.KindAPI, Role: auth.Viewer, TTLSeconds: 315_360_001}, "ttl_seconds", "315360001"},
		{"ttl negative", "POST", p + "/tokens", admin, api.TokenRequest{Kind: auth.KindAPI, Role: auth.Viewer, TTLSeconds: -1}, "ttl_seconds", "-1"},
		{"token name", "POST", p + "/tokens", admin, api.TokenRequest{Kind: auth.KindAPI, Role: auth.Viewer, Name: strings.Repeat("n", 256)}, "name", "256 bytes, at most 255"},
	} {
		f.chapter(c.name, func(t *testing.T) {
			code, b := f.do(c.method, c.path, c.token, c.body)
			e := errOf(b)
			if code != http.StatusBadRequest || e.Code != api.CodeBadRequest || e.Field != c.field || !strings.Contains(e.Error, c.problem) {
				t.Errorf("%d %.300s; want 400 naming %s: %s", code, b, c.field, c.problem)
			}
		})
	}

	f.chapter("labels are kept until cleared explicitly", func(t *testing.T) {
		code, b := f.do("PUT", p+"/hosts/"+host.HostID+"/labels", operator, api.Labels{Labels: map[string]string{"env": "prod"}})
		if code != http.StatusOK {
			t.Fatalf("set labels: %d %s", code, b)
		}
		for _, body := range []string{`null`, `{}`, `{"labels": null}`} {
			f.do("PUT", p+"/hosts/"+host.HostID+"/labels", operator, []byte(body))
		}
		h, err := f.db.Fleet.HostSummary(t.Context(), host.HostID)
		if err != nil {
			t.Fatal(err)
		}
		if h.Labels["env"] != "prod" {
			t.Errorf("labels after refused bodies: %v", h.Labels)
		}
		code, b = f.do("PUT", p+"/hosts/"+host.HostID+"/labels", operator, []byte(`{"labels": {}}`))
		var got fleet.HostSummary
		f.decode(b, &got)
		if code != http.StatusOK || len(got.Labels) != 0 {
			t.Errorf(`{"labels": {}}: %d, labels %v; want them cleared`, code, got.Labels)
		}
	})
	f.chapter("a token lives at most 10 years", func(t *testing.T) {
		code, b := f.do("POST", p+"/tokens", admin, api.TokenRequest{Kind: auth.KindAPI, Role: auth.Viewer, TTLSeconds: 315_360_000})
		var tr api.TokenResponse
		f.decode(b, &tr)
		if want := time.Now().Add(315_360_000 * time.Second); code != http.StatusCreated || tr.Token.Expires.Before(want.Add(-time.Minute)) || tr.Token.Expires.After(want.Add(time.Minute)) {
			t.Errorf("ttl of 10 years: %d, expires %v", code, tr.Token.Expires)
		}
	})
	f.chapter("reports within the limits are stored", func(t *testing.T) {
		ok := report(with(func(f *fleet.Facts) {
			f.OSPretty, f.Addresses = strings.Repeat("D", 256), addrs[:1024]
		}), []inventory.Package{pkg}, true)
		if code, b := f.do("POST", p+"/agent/checkin", host.Credential, ok); code != http.StatusOK {
			t.Errorf("check-in at the limits: %d %.300s", code, b)
		}
	})
}
