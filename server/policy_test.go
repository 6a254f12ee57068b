package server_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/api/policyapi"
	"github.com/patchbay/patchbay/audit"
	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/feeds"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/kinds"
	"github.com/patchbay/patchbay/patch"
	"github.com/patchbay/patchbay/policy"
	"github.com/patchbay/patchbay/risk"
	"github.com/patchbay/patchbay/scorecard"
	"github.com/patchbay/patchbay/server"
)

// exampleFiles reads docs/policy-example as `patchbay apply -f` sends it.
func exampleFiles(t *testing.T) []policyapi.PolicyFile {
	t.Helper()
	var files []policyapi.PolicyFile
	err := filepath.WalkDir("../docs/policy-example", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		files = append(files, policyapi.PolicyFile{Name: strings.TrimPrefix(path, "../"), Content: string(b)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func (f *fixture) apply(token string, req policyapi.ApplyRequest) policyapi.ApplyResponse {
	f.t.Helper()
	code, body := f.do("POST", api.Prefix+"/policy/apply", token, req)
	if code != 200 {
		f.t.Fatalf("apply: %d %s", code, body)
	}
	var r policyapi.ApplyResponse
	f.decode(body, &r)
	return r
}

func (f *fixture) findings(token string, q url.Values) []fleet.FindingRow {
	f.t.Helper()
	q.Set("limit", "1000")
	code, body := f.do("GET", api.Prefix+"/findings?"+q.Encode(), token, nil)
	if code != 200 {
		f.t.Fatalf("findings %s: %d %s", q.Encode(), code, body)
	}
	var p fleet.FindingPage
	f.decode(body, &p)
	return p.Findings
}

func (f *fixture) explain(token string, id int64) policyapi.FindingDetail {
	f.t.Helper()
	code, body := f.do("GET", api.Prefix+fmt.Sprintf("/findings/%d", id), token, nil)
	if code != 200 {
		f.t.Fatalf("finding %d: %d %s", id, code, body)
	}
	var d policyapi.FindingDetail
	f.decode(body, &d)
	return d
}

// checkCounts checks that every host's open counts (kept by the syncs
// and re-decisions) equal its open findings, by priority.
func (f *fixture) checkCounts(token string, hosts map[string]string, when string) {
	f.t.Helper()
	for name, id := range hosts {
		var h fleet.HostSummary
		_, body := f.do("GET", api.Prefix+"/hosts/"+id, token, nil)
		f.decode(body, &h)
		want := countBy(f.findings(token, url.Values{"host": {id}}), func(r fleet.FindingRow) string { return r.Priority.String() })
		if fmt.Sprint(h.Open) != fmt.Sprint(want) {
			f.t.Errorf("%s: %s open counts %v, findings %v", when, name, h.Open, want)
		}
	}
}

func countBy(rows []fleet.FindingRow, key func(fleet.FindingRow) string) map[string]int {
	m := map[string]int{}
	for _, r := range rows {
		m[key(r)]++
	}
	return m
}

func TestPolicySQLite(t *testing.T)   { testPolicy(t, "sqlite") }
func TestPolicyPostgres(t *testing.T) { testPolicy(t, "postgres") }

func priorityOf(r fleet.FindingRow) string { return r.Priority.String() }
func hostOf(r fleet.FindingRow) string     { return r.Hostname }

// testPolicy applies the documented example repository to a fleet of
// three hosts and a service, and follows the decisions through label
// changes, a KEV update, an expiring exception, VEX, invalid documents,
// dry runs and round trips. Each step is a chapter (a subtest); a chapter
// that stops short ends the story.
func testPolicy(t *testing.T, backend string) {
	feed := debianFeed(t)
	pkgs := webDB(t)
	var clock atomic.Pointer[time.Time]
	start := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	clock.Store(&start)
	now := func() time.Time { return *clock.Load() }
	f := newFixture(t, backend, func(c *server.Config) { c.Now = now })
	ctx := context.Background()
	im := &feeds.Importer{Store: f.db, Now: now}
	if _, err := im.ImportPaths(ctx, []string{feed, filepath.Join(sharedtest.Dir(t, "feeds/osv/PyPI"), "all.zip")}); err != nil {
		t.Fatal(err)
	}
	viewer, operator, admin := f.api(auth.Viewer), f.api(auth.Operator), f.api(auth.Admin)
	tok := f.token(auth.KindEnrollment, auth.Agent, -1, time.Time{})
	hosts := map[string]string{}
	var stgCred string
	creds := map[string]string{}
	for _, h := range []struct {
		name   string
		labels map[string]string
	}{
		{"web-1", map[string]string{"env": "prod", "role": "web"}},
		{"db-1", map[string]string{"env": "prod", "role": "db"}},
		{"web-stg", map[string]string{"env": "staging", "role": "web"}},
	} {
		facts := factsOf(h.name, "m-"+h.name)
		facts.Labels = h.labels
		e := f.enroll(tok, facts)
		hosts[h.name] = e.HostID
		creds[h.name] = e.Credential
		if h.name == "web-stg" {
			stgCred = e.Credential
		}
		if code, body := f.do("POST", api.Prefix+"/agent/checkin", e.Credential, report(facts, pkgs, true)); code != 200 {
			t.Fatalf("check-in %s: %d %s", h.name, code, body)
		}
	}
	perHost := len(f.findings(viewer, url.Values{"host": {hosts["web-1"]}}))
	if perHost == 0 {
		t.Fatal("the web-db fixture has no findings")
	}

	// The state the chapters hand on.
	files := exampleFiles(t)
	var (
		accepted []fleet.FindingRow // db-1's findings the reporting exception accepts
		webID    int64              // web-1's openssl CVE-2026-35189
		expired  = time.Date(2027, 4, 1, 0, 0, 0, 0, time.UTC)
		dbRows   []fleet.FindingRow // db-1's findings in urgency order, once the exception expired
	)

	if !f.chapter("the built-in policy", func(t *testing.T) {
		// Without context: tier 3, internal → the fixture's findings (no
		// exploitation, no CVSS) are all P4.
		if got := countBy(f.findings(viewer, url.Values{}), priorityOf); got["P4"] != 3*perHost {
			t.Fatalf("before any policy: %v", got)
		}
	}) {
		return
	}

	if !f.chapter("apply the example", func(t *testing.T) {
		// 16 documents created, findings decided again in their new
		// context.
		if code, body := f.do("POST", api.Prefix+"/policy/apply", operator, policyapi.ApplyRequest{Files: files}); code != 403 {
			t.Errorf("apply by an operator: %d %s", code, body)
		}
		dry := f.apply(admin, policyapi.ApplyRequest{Files: files, DryRun: true})
		if len(dry.Changes) != 16 || dry.Reprioritized != nil {
			t.Fatalf("dry run: %+v", dry)
		}
		code, body := f.do("GET", api.Prefix+"/policy", viewer, nil)
		if code != 200 || strings.Contains(string(body), `"kind"`) {
			t.Fatalf("a dry run applied something: %s", body)
		}
		res := f.apply(admin, policyapi.ApplyRequest{Files: files})
		if len(res.Changes) != 16 || res.Reprioritized == nil || res.Reprioritized.Hosts != 3 || res.Reprioritized.Changed == 0 {
			t.Fatalf("apply: %+v %+v", res.Changes, res.Reprioritized)
		}
		for _, c := range res.Changes {
			if c.Action != policy.Created || c.Version != 1 {
				t.Errorf("%s: %s v%d", c.Ref(), c.Action, c.Version)
			}
		}
		// web-1 runs checkout (tier 1, internet): P4 -1 -1 → P2. db-1 runs
		// reporting (tier 3, internal): P4. web-stg runs nothing: P4.
		open := f.findings(viewer, url.Values{})
		prio := map[string]map[string]int{}
		for _, r := range open {
			if prio[r.Hostname] == nil {
				prio[r.Hostname] = map[string]int{}
			}
			prio[r.Hostname][r.Priority.String()]++
		}
		if prio["web-1"]["P2"] != perHost-1 || prio["db-1"]["P4"] != perHost-1-2 || prio["web-stg"]["P4"] != perHost-1 {
			// Each host has one openssl finding the VEX statement marks not
			// affected; db-1 two accepted by the reporting exception.
			t.Fatalf("open findings by host and priority: %v (per host %d)", prio, perHost)
		}
		if got := countBy(f.findings(viewer, url.Values{"status": {"not_affected"}}), hostOf); got["web-1"] != 1 || got["db-1"] != 1 || got["web-stg"] != 1 {
			t.Errorf("not affected (VEX): %v", got)
		}
		accepted = f.findings(viewer, url.Values{"status": {"accepted"}})
		if len(accepted) != 2 || accepted[0].Hostname != "db-1" || accepted[0].Exception != "reporting-postgres-upgrade" || accepted[0].Package != "postgresql-15" {
			t.Fatalf("accepted: %+v", accepted)
		}
		if got := countBy(f.findings(viewer, url.Values{"service": {"checkout"}}), hostOf); len(got) != 1 || got["web-1"] != perHost-1 {
			t.Errorf("findings of service checkout: %v", got)
		}
		if got := countBy(f.findings(viewer, url.Values{"team": {"platform"}}), hostOf); len(got) != 1 || got["db-1"] != perHost-3 {
			t.Errorf("findings of team platform: %v", got)
		}
		if code, body := f.do("GET", api.Prefix+"/findings?team=nobody", viewer, nil); code != 400 || errOf(body).Field != "query.team" {
			t.Errorf("unknown team: %d %s", code, body)
		}
		f.checkCounts(viewer, hosts, "after the apply")
	}) {
		return
	}

	if !f.chapter("why P2", func(t *testing.T) {
		// Why is a web-1 finding P2? The decision path and its history.
		web := f.findings(viewer, url.Values{"host": {hosts["web-1"]}, "package": {"openssl"}})
		for _, r := range web {
			if r.Vulnerability == "CVE-2026-35189" {
				webID = r.ID
			}
		}
		if webID == 0 {
			t.Fatalf("no open openssl CVE-2026-35189 finding on web-1: %+v", web)
		}
		d := f.explain(viewer, webID)
		if d.Context.Tier != 1 || d.Context.TierFrom != "service checkout" || d.Context.Exposure != "internet" || d.Context.Team != "payments" ||
			d.Context.Policy != "default" || strings.Join(d.Context.Groups, ",") != "production" {
			t.Errorf("context: %+v", d.Context)
		}
		wantReasons := []string{
			"base P4: exploitation none, not automatable, partial impact (policy default)",
			"tier 1 (service checkout) shifts -1",
			"exposure internet (service checkout) shifts -1",
			"P4 → P2",
			"SLA 30d for P2 system patches",
		}
		if strings.Join(d.Decision.Reasons, "\n") != strings.Join(wantReasons, "\n") {
			t.Errorf("reasons:\n%s", strings.Join(d.Decision.Reasons, "\n"))
		}
		if len(d.History) != 1 || d.History[0].PriorityFrom != risk.P4 || d.History[0].PriorityTo != risk.P2 ||
			!strings.HasPrefix(d.History[0].Cause, "policy applied by ") || !strings.Contains(d.History[0].Cause, "Policy/default created (v1)") {
			t.Errorf("history: %+v", d.History)
		}
		if want := d.Finding.FirstSeen.Add(30 * 24 * time.Hour); !d.Finding.Due.Equal(want) {
			t.Errorf("due %s, want first seen + 30d = %s", d.Finding.Due, want)
		}
	}) {
		return
	}

	if !f.chapter("round trip", func(t *testing.T) {
		// Applying again changes nothing; neither does applying what get
		// returns.
		again := f.apply(admin, policyapi.ApplyRequest{Files: files})
		for _, c := range again.Changes {
			if c.Action != policy.Unchanged {
				t.Errorf("second apply: %s %s", c.Ref(), c.Action)
			}
		}
		if again.Reprioritized != nil {
			t.Errorf("an unchanged apply decided findings again: %+v", again.Reprioritized)
		}
		var list policyapi.PolicyList
		_, body := f.do("GET", api.Prefix+"/policy", viewer, nil)
		f.decode(body, &list)
		var docs []*policy.Document
		for _, pd := range list.Documents {
			doc, err := kinds.All().FromCanonical(pd.Document)
			if err != nil {
				t.Fatal(err)
			}
			docs = append(docs, doc)
		}
		var yml strings.Builder
		if err := policy.Encode(&yml, docs); err != nil {
			t.Fatal(err)
		}
		for _, c := range f.apply(admin, policyapi.ApplyRequest{Files: []policyapi.PolicyFile{{Name: "get.yaml", Content: yml.String()}}}).Changes {
			if c.Action != policy.Unchanged {
				t.Errorf("round trip: %s %s", c.Ref(), c.Action)
			}
		}
	}) {
		return
	}

	if !f.chapter("invalid documents", func(t *testing.T) {
		// Every problem with file:line:column and field; nothing applied,
		// not even the valid documents beside them.
		changedTeam := strings.Replace(exampleFile(t, files, "teams.yaml"), "Card payments and settlement", "Payments", 1)
		code, body := f.do("POST", api.Prefix+"/policy/apply", admin, policyapi.ApplyRequest{Files: []policyapi.PolicyFile{
			{Name: "teams.yaml", Content: changedTeam}, {Name: "services.yaml", Content: strings.Replace(exampleFile(t, files, "services.yaml"), "tier: 3", "tier: three", 1) + "\nstatus: x\n"}}})
		e := errOf(body)
		if code != 400 || e.Code != api.CodeInvalidPolicy || len(e.Problems) != 2 ||
			e.Problems[0].Error() != `services.yaml:29:9: spec.tier: want an integer, got the string "three"` ||
			e.Problems[1].Error() != "services.yaml:44:1: status: unknown field (want one of apiVersion, kind, metadata, spec)" {
			t.Errorf("invalid apply: %d %s", code, body)
		}
		// A reference to a missing team fails the whole apply too.
		code, body = f.do("POST", api.Prefix+"/policy/apply", admin, policyapi.ApplyRequest{Files: []policyapi.PolicyFile{
			{Name: "teams.yaml", Content: changedTeam}, {Name: "svc.yaml", Content: "apiVersion: patchbay/v1\nkind: Service\nmetadata:\n  name: ghost\nspec:\n  owner: ghosts\n  tier: 2\n  exposure: internal\n"}}})
		if e := errOf(body); code != 400 || len(e.Problems) != 1 || e.Problems[0].Error() != `svc.yaml:6:10: spec.owner: no Team named "ghosts"` {
			t.Errorf("dangling owner: %d %s", code, body)
		}
		var teams policyapi.PolicyList
		_, body = f.do("GET", api.Prefix+"/policy?kind=teams&name=payments", viewer, nil)
		f.decode(body, &teams)
		if len(teams.Documents) != 1 || teams.Documents[0].Version != 1 || strings.Contains(string(teams.Documents[0].Document), `"description":"Payments"`) {
			t.Errorf("a failed apply changed Team/payments: %s", body)
		}
	}) {
		return
	}

	if !f.chapter("classification rules", func(t *testing.T) {
		// The policy's classification rules add their types to the updates
		// agents report (libjemalloc2: performance, in the example policy).
		stgFacts := factsOf("web-stg", "m-web-stg")
		stgFacts.Labels = map[string]string{"env": "staging", "role": "web"}
		rep := report(stgFacts, pkgs, false)
		ups := []patch.Update{{Ecosystem: "Debian:12", Name: "libjemalloc2", Installed: "5.3.0-1", Candidate: "5.3.0-1+deb12u1", Pocket: "updates", CVEs: []string{}, Types: []patch.Type{patch.BugFix}, Cycle: "system"}}
		rep.Updates, rep.UpdatesHash = &ups, fleet.UpdatesHash(ups)
		if code, body := f.do("POST", api.Prefix+"/agent/checkin", stgCred, rep); code != 200 {
			t.Fatalf("check-in with updates: %d %s", code, body)
		}
		var hd fleet.HostDetail
		_, body := f.do("GET", api.Prefix+"/hosts/"+hosts["web-stg"], viewer, nil)
		f.decode(body, &hd)
		if len(hd.Updates) != 1 || fmt.Sprint(hd.Updates[0].Types) != "[bugfix performance]" {
			t.Errorf("update types: %+v", hd.Updates)
		}
	}) {
		return
	}

	if !f.chapter("a label change", func(t *testing.T) {
		// It re-decides the host's findings, with the cause.
		code, body := f.do("PUT", api.Prefix+"/hosts/"+hosts["web-stg"]+"/labels", operator, api.Labels{Labels: map[string]string{"tier": "1", "exposure": "internet"}})
		if code != 200 {
			t.Fatalf("labels: %d %s", code, body)
		}
		stg := f.findings(viewer, url.Values{"host": {hosts["web-stg"]}})
		if got := countBy(stg, priorityOf); got["P2"] != len(stg) {
			t.Errorf("web-stg after tier=1, exposure=internet: %v", got)
		}
		d := f.explain(viewer, stg[0].ID)
		if len(d.History) != 1 || !strings.HasPrefix(d.History[0].Cause, fmt.Sprintf("labels of host %s set by api:", hosts["web-stg"])) ||
			!strings.HasSuffix(d.History[0].Cause, ": exposure=internet,tier=1") {
			t.Errorf("label change history: %+v", d.History)
		}
	}) {
		return
	}

	if !f.chapter("labels the agent reports", func(t *testing.T) {
		// They count too: db-1's agent now says it is internet-facing (an
		// unchanged inventory: only the facts move).
		dbFacts := factsOf("db-1", "m-db-1")
		dbFacts.Labels = map[string]string{"env": "prod", "role": "db", "exposure": "internet"}
		if code, body := f.do("POST", api.Prefix+"/agent/checkin", creds["db-1"], report(dbFacts, pkgs, false)); code != 200 {
			t.Fatalf("check-in with new labels: %d %s", code, body)
		}
		db := f.findings(viewer, url.Values{"host": {hosts["db-1"]}})
		if got := countBy(db, priorityOf); got["P3"] != len(db) {
			t.Errorf("db-1 after exposure=internet: %v", got)
		}
		if h := f.explain(viewer, db[0].ID).History; len(h) != 1 || h[0].Cause != "labels reported by db-1 changed: env=prod,exposure=internet,role=db" {
			t.Errorf("history after the agent's labels: %+v", h)
		}
		dbFacts.Labels = map[string]string{"env": "prod", "role": "db"}
		if code, body := f.do("POST", api.Prefix+"/agent/checkin", creds["db-1"], report(dbFacts, pkgs, false)); code != 200 {
			t.Fatalf("check-in with the labels back: %d %s", code, body)
		}
	}) {
		return
	}

	if !f.chapter("KEV", func(t *testing.T) {
		// CISA adds CVE-2026-35189 (openssl) to KEV: on web-1 (tier 1,
		// internet) it becomes P1 in the emergency lane; the history says
		// why.
		later := start.Add(24 * time.Hour)
		clock.Store(&later)
		kevJSON := `{"title": "CISA Catalog of Known Exploited Vulnerabilities", "catalogVersion": "2026.11.24", "dateReleased": "2026-11-24T12:00:00Z", "count": 1,
		"vulnerabilities": [{"cveID": "CVE-2026-35189", "vendorProject": "OpenSSL", "product": "OpenSSL", "vulnerabilityName": "OpenSSL test", "dateAdded": "2026-11-24",
		"shortDescription": "x", "requiredAction": "patch", "dueDate": "2026-12-15", "knownRansomwareCampaignUse": "Known", "notes": ""}]}`
		if _, err := im.ImportKEV(ctx, strings.NewReader(kevJSON), feeds.SourceState{Origin: "test"}); err != nil {
			t.Fatal(err)
		}
		rr, err := f.srv.ReassessExploitation(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rr.Hosts != 3 || rr.Changed < 3 {
			t.Errorf("reassessment: %+v", rr)
		}
		// The scorecard's kev fact reads the same catalog: the services
		// of the hosts with CVE-2026-35189 fail no-kev.
		if _, err := f.srv.ScoreNow(ctx); err != nil {
			t.Fatal(err)
		}
		code, b := f.do("GET", api.Prefix+"/scorecards/patch-hygiene", viewer, nil)
		if code != 200 {
			t.Fatalf("scorecard: %d %s", code, b)
		}
		var sc scorecard.Detail
		f.decode(b, &sc)
		var noKEV []string
		for _, r := range sc.Results {
			for _, ru := range r.Rules {
				if ru.Rule == "no-kev" && !ru.Pass {
					noKEV = append(noKEV, r.Entity)
				}
			}
		}
		if len(noKEV) == 0 {
			t.Errorf("CVE-2026-35189 in KEV: no service fails no-kev (%d results)", len(sc.Results))
		}
		d := f.explain(viewer, webID)
		if d.Finding.Priority != risk.P1 || d.Finding.Lane != "emergency" || d.Finding.Exploitation != "active" {
			t.Errorf("after KEV: %+v", d.Finding)
		}
		if n := len(d.History); n != 2 || d.History[1].PriorityFrom != risk.P2 || d.History[1].PriorityTo != risk.P1 ||
			d.History[1].Cause != "exploitation evidence: CVE-2026-35189 added to CISA KEV on 2026-11-24" || !d.History[1].At.Equal(later) {
			t.Errorf("history after KEV: %+v", d.History)
		}
		if want := start.Add(3 * 24 * time.Hour); !d.Finding.Due.Equal(want) {
			t.Errorf("due %s, want first seen + the emergency rule's 3d = %s", d.Finding.Due, want)
		}
		if !strings.Contains(strings.Join(d.Decision.Reasons, "\n"), "emergency rule known-exploited-internet (exploitation ≥ active, exposure ≥ internet): at least P1, emergency lane") {
			t.Errorf("reasons after KEV:\n%s", strings.Join(d.Decision.Reasons, "\n"))
		}
		if !strings.Contains(strings.Join(d.Evidence, "\n"), "known exploited (CISA KEV since 2026-11-24, federal due date 2026-12-15), used in ransomware campaigns") {
			t.Errorf("evidence: %v", d.Evidence)
		}
		if em := f.findings(viewer, url.Values{"lane": {"emergency"}}); len(em) != 2 { // web-1, and web-stg (now tier 1, internet)
			t.Errorf("emergency lane: %d findings", len(em))
		}
		// db-1 (tier 3, internal): active → P2, not the emergency lane.
		dbKEV := f.findings(viewer, url.Values{"host": {hosts["db-1"]}, "vuln": {"CVE-2026-35189"}})
		if len(dbKEV) != 1 || dbKEV[0].Priority != risk.P2 || dbKEV[0].Lane != "" {
			t.Errorf("db-1 after KEV: %+v", dbKEV)
		}
		f.checkCounts(viewer, hosts, "after KEV")
		// Nothing moved: reassessing again changes nothing.
		if rr, err := f.srv.ReassessExploitation(ctx); err != nil || rr.Changed != 0 {
			t.Errorf("second reassessment: %+v %v", rr, err)
		}
	}) {
		return
	}

	if !f.chapter("EPSS", func(t *testing.T) {
		// CVE-2026-54874 (openssl) rises to 0.52 → exploitation likely: on
		// web-1, base P3, tier 1 and internet shift it to P1.
		epss := "#model_version:v2025.03.14,score_date:2026-11-24T00:00:00+0000\ncve,epss,percentile\nCVE-2026-54874,0.52000,0.98000\n"
		if _, err := im.ImportEPSS(ctx, strings.NewReader(epss), feeds.SourceState{Origin: "test"}); err != nil {
			t.Fatal(err)
		}
		if rr, err := f.srv.ReassessExploitation(ctx); err != nil || rr.Changed != 3 {
			t.Errorf("reassessment after EPSS: %+v %v", rr, err)
		}
		ep := f.findings(viewer, url.Values{"host": {hosts["web-1"]}, "vuln": {"CVE-2026-54874"}})
		if len(ep) != 1 || ep[0].Priority != risk.P1 || ep[0].Exploitation != "likely" || ep[0].Lane != "" {
			t.Fatalf("after EPSS: %+v", ep)
		}
		if h := f.explain(viewer, ep[0].ID).History; len(h) != 2 || h[1].Cause != "exploitation evidence: EPSS of CVE-2026-54874 now 0.520 (exploitation likely)" {
			t.Errorf("history after EPSS: %+v", h)
		}
		// The list carries the reasons of each decision.
		if r := ep[0].Reasons; len(r) == 0 || r[0] != "base P3: exploitation likely, not automatable, partial impact (policy default)" {
			t.Errorf("reasons in the list: %q", r)
		}
	}) {
		return
	}

	if !f.chapter("the exception expires", func(t *testing.T) {
		// The accepted risk expires at the end of 2027-03-31: its findings
		// reopen, and say why.
		if rr, err := f.srv.Reconcile(ctx); err != nil || rr.Changed != 0 {
			t.Errorf("reconcile before expiry: %+v %v", rr, err)
		}
		clock.Store(&expired)
		if rr, err := f.srv.Reconcile(ctx); err != nil || rr.Changed != 2 {
			t.Errorf("reconcile after expiry: %+v %v", rr, err)
		}
		if n := len(f.findings(viewer, url.Values{"status": {"accepted"}})); n != 0 {
			t.Errorf("%d findings still accepted after the expiry", n)
		}
		f.checkCounts(viewer, hosts, "after the expiry")
		d := f.explain(viewer, accepted[0].ID)
		if last := d.History[len(d.History)-1]; d.Finding.State != "open" || last.StateFrom != "accepted" || last.StateTo != "open" ||
			last.Cause != "exception expired or deleted: Exception/reporting-postgres-upgrade" {
			t.Errorf("after expiry: %+v %+v", d.Finding, d.History)
		}
	}) {
		return
	}

	if !f.chapter("overdue first", func(t *testing.T) {
		// On db-1, the KEV finding (P2, 30 days) and the EPSS one (P3, 90
		// days) are overdue, the P4s (180 days) not yet; on the web hosts
		// every P1 and P2.
		rows := f.findings(viewer, url.Values{"host": {hosts["db-1"]}})
		dbRows = rows
		if rows[0].Vulnerability != "CVE-2026-35189" || rows[1].Vulnerability != "CVE-2026-54874" || !rows[1].Due.Before(expired) || !rows[2].Due.After(expired) {
			t.Errorf("urgency order on db-1: %s %s, %s %s, %s %s", rows[0].Vulnerability, rows[0].Due, rows[1].Vulnerability, rows[1].Due, rows[2].Vulnerability, rows[2].Due)
		}
		if n := len(f.findings(viewer, url.Values{"status": {"overdue"}})); n != 2*(perHost-1)+2 {
			t.Errorf("%d overdue findings at %s, want %d", n, expired, 2*(perHost-1)+2)
		}
	}) {
		return
	}

	if !f.chapter("paging", func(t *testing.T) {
		// Paging keeps the order across the two walks (overdue, then the
		// rest): pages of 1 and of 2 (the boundary falls on a page's end).
		for _, size := range []string{"1", "2", "7"} {
			var ids []int64
			q := url.Values{"host": {hosts["db-1"]}, "limit": {size}}
			for page := 0; page < 500; page++ {
				code, body := f.do("GET", api.Prefix+"/findings?"+q.Encode(), viewer, nil)
				var p fleet.FindingPage
				f.decode(body, &p)
				if code != 200 {
					t.Fatalf("pages of %s, page %d (cursor %s): %d %s", size, page, q.Get("cursor"), code, body)
				}
				for _, r := range p.Findings {
					ids = append(ids, r.ID)
				}
				if p.Next == "" {
					break
				}
				q.Set("cursor", p.Next)
			}
			if len(ids) != len(dbRows) {
				t.Errorf("pages of %s: %d findings, want %d", size, len(ids), len(dbRows))
				continue
			}
			for i := range ids {
				if ids[i] != dbRows[i].ID {
					t.Errorf("pages of %s: finding %d is %d, want %d", size, i, ids[i], dbRows[i].ID)
					break
				}
			}
		}
	}) {
		return
	}

	if !f.chapter("a service inventory from CI", func(t *testing.T) {
		// A service's code inventory uploaded from CI is decided in the
		// service's context (billing-api: tier 2, internal, team payments).
		code, body := f.do("PUT", api.Prefix+"/services/billing-api/inventory", operator, api.ServiceInventory{Packages: []inventory.Package{
			{Ecosystem: "PyPI", Name: "requests", Version: "2.25.0", Location: "billing-api/requirements.txt"}}})
		var up api.ServiceInventoryResponse
		f.decode(body, &up)
		if code != 200 || up.Open == 0 || up.HostID != fleet.ServiceAssetID("billing-api") {
			t.Fatalf("service upload: %d %s", code, body)
		}
		svc := f.findings(viewer, url.Values{"service": {"billing-api"}})
		if len(svc) != up.Open || svc[0].Cycle != "application" {
			t.Errorf("service findings: %d, want %d: %+v", len(svc), up.Open, svc)
		}
		d := f.explain(viewer, svc[0].ID)
		if d.Context.Tier != 2 || d.Context.Team != "payments" || d.Context.TierFrom != "service billing-api" {
			t.Errorf("service context: %+v", d.Context)
		}
		if code, _ := f.do("PUT", api.Prefix+"/services/nope/inventory", operator, api.ServiceInventory{}); code != 404 {
			t.Errorf("upload for an unknown service: %d", code)
		}
		var hl api.HostList
		_, body = f.do("GET", api.Prefix+"/hosts", viewer, nil)
		f.decode(body, &hl)
		if len(hl.Hosts) != 3 {
			t.Errorf("the service's inventory is listed as a host: %d hosts", len(hl.Hosts))
		}
	}) {
		return
	}

	f.chapter("deleting the exception", func(t *testing.T) {
		// A new version, kept in the history.
		dl := f.apply(admin, policyapi.ApplyRequest{Delete: []string{"exception/reporting-postgres-upgrade"}})
		if len(dl.Changes) != 1 || dl.Changes[0].Action != policy.Deleted || dl.Changes[0].Version != 2 {
			t.Errorf("delete: %+v", dl.Changes)
		}
		var hist policyapi.PolicyHistory
		_, body := f.do("GET", api.Prefix+"/policy/history?kind=Exception&name=reporting-postgres-upgrade", viewer, nil)
		f.decode(body, &hist)
		if len(hist.Versions) != 2 || hist.Versions[0].Action != "created" || hist.Versions[1].Action != "deleted" || !strings.HasPrefix(hist.Versions[1].AppliedBy, "api:") {
			t.Errorf("history: %s", body)
		}
		// Every applied version is in the audit chain, which verifies.
		entries, err := f.db.Audit.Entries(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n := map[string]int{}
		for _, e := range entries {
			n[e.Action]++
		}
		if n["policy.created"] != 16 || n["policy.deleted"] != 1 {
			t.Errorf("audit actions: %v", n)
		}
		if err := audit.Verify(entries, nil); err != nil {
			t.Error(err)
		}
	})
}

func exampleFile(t *testing.T, files []policyapi.PolicyFile, base string) string {
	t.Helper()
	for _, f := range files {
		if filepath.Base(f.Name) == base {
			return f.Content
		}
	}
	t.Fatalf("no %s in the example", base)
	return ""
}

// TestApplyLeavesTheRestToTheLeader: when deciding the findings again
// takes longer than the apply may wait, the apply answers "pending" and
// the leader's reconcile finishes: the policy revision is then decided.
func TestApplyLeavesTheRestToTheLeader(t *testing.T) {
	pkgs := webDB(t)
	f := newFixture(t, "sqlite", func(c *server.Config) { c.ApplyWait = time.Nanosecond })
	ctx := context.Background()
	if _, err := (&feeds.Importer{Store: f.db}).ImportPaths(ctx, []string{debianFeed(t)}); err != nil {
		t.Fatal(err)
	}
	facts := factsOf("web-1", "m-web-1")
	facts.Labels = map[string]string{"env": "prod", "role": "web"}
	e := f.enroll(f.token(auth.KindEnrollment, auth.Agent, 1, time.Time{}), facts)
	if code, body := f.do("POST", api.Prefix+"/agent/checkin", e.Credential, report(facts, pkgs, true)); code != 200 {
		t.Fatal(code, string(body))
	}
	res := f.apply(f.api(auth.Admin), policyapi.ApplyRequest{Files: exampleFiles(t)})
	if !res.Pending {
		t.Fatalf("apply with no time to wait: %+v", res)
	}
	viewer := f.api(auth.Viewer)
	if got := countBy(f.findings(viewer, url.Values{}), func(r fleet.FindingRow) string { return r.Priority.String() }); got["P2"] != 0 {
		t.Fatalf("decided within a nanosecond? %v", got)
	}
	var pl policyapi.PolicyList
	_, body := f.do("GET", api.Prefix+"/policy", viewer, nil)
	f.decode(body, &pl)
	if pl.Revision == 0 || pl.Decided >= pl.Revision {
		t.Errorf("pending apply: revision %d, decided %d", pl.Revision, pl.Decided)
	}
	rr, err := f.srv.Reconcile(ctx)
	if err != nil || rr.Changed == 0 {
		t.Fatalf("reconcile: %+v %v", rr, err)
	}
	_, body = f.do("GET", api.Prefix+"/policy", viewer, nil)
	f.decode(body, &pl)
	if pl.Decided != pl.Revision {
		t.Errorf("after the reconcile: revision %d, decided %d", pl.Revision, pl.Decided)
	}
	if got := countBy(f.findings(viewer, url.Values{}), func(r fleet.FindingRow) string { return r.Priority.String() }); got["P2"] == 0 || got["P4"] != 0 {
		t.Errorf("after the leader's reconcile: %v", got)
	}
	if rr, err := f.srv.Reconcile(ctx); err != nil || rr.Findings != 0 {
		t.Errorf("second reconcile did work again: %+v %v", rr, err)
	}
}

// TestRolloutKindsApply: the rollout documents go through the same apply,
// validation and listing as the policy's.
func TestRolloutKindsApply(t *testing.T) {
	f := newFixture(t, "sqlite", nil)
	admin := f.api(auth.Admin)
	window := "apiVersion: patchbay/v1\nkind: MaintenanceWindow\nmetadata:\n  name: prod-monthly\nspec:\n  schedule: \"0 22 * * TUE#2\"\n  duration: 4h\n  timeZone: Europe/Paris\n  hostGroups: [production]\n"
	code, body := f.do("POST", api.Prefix+"/policy/apply", admin, policyapi.ApplyRequest{Files: []policyapi.PolicyFile{{Name: "w.yaml", Content: window}}})
	if e := errOf(body); code != 400 || len(e.Problems) != 1 || e.Problems[0].Error() != `w.yaml:9:16: spec.hostGroups[0]: no HostGroup named "production"` {
		t.Errorf("window without its host group: %d %s", code, body)
	}
	group := "apiVersion: patchbay/v1\nkind: HostGroup\nmetadata:\n  name: production\nspec:\n  selector: env=prod\n"
	res := f.apply(admin, policyapi.ApplyRequest{Files: []policyapi.PolicyFile{{Name: "w.yaml", Content: window}, {Name: "g.yaml", Content: group}}})
	if len(res.Changes) != 2 {
		t.Fatalf("apply: %+v", res.Changes)
	}
	var list policyapi.PolicyList
	_, body = f.do("GET", api.Prefix+"/policy?kind=maintenancewindows", f.api(auth.Viewer), nil)
	f.decode(body, &list)
	if len(list.Documents) != 1 || list.Documents[0].Name != "prod-monthly" || !strings.Contains(string(list.Documents[0].Document), `"schedule":"0 22 * * TUE#2"`) {
		t.Errorf("listing: %s", body)
	}
}
